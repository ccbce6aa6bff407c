//! The contention section as a chart (`--svg PATH`): decided/s and p50 latency against K,
//! the handler beside the ceiling, in two panels of one SVG.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::contention::{Mode, Phase};
use crate::report::Machine;
use crate::{Plan, Result};

const SIZE: (u32, u32) = (1200, 520);
const FONT: &str = "sans-serif";

/// One panel: a figure of each phase, plotted against K.
struct Panel {
    title: &'static str,
    axis: &'static str,
    value: fn(&Phase) -> f64,
    /// Decimals of the y tick labels.
    decimals: usize,
}

const DECIDED: Panel = Panel {
    title: "Orders decided per second",
    axis: "decided/s",
    value: |phase| phase.decided_per_second,
    decimals: 0,
};

const P50: Panel = Panel {
    title: "Median latency of one decision",
    axis: "p50 ms",
    value: |phase| phase.latencies.p50_ms(),
    decimals: 1,
};

fn color(mode: Mode) -> RGBColor {
    match mode {
        Mode::Handler => RGBColor(31, 119, 180),
        Mode::Ceiling => RGBColor(214, 39, 40),
    }
}

/// Writes the chart of `phases` to `path`, creating its folder.
pub fn write(path: &Path, phases: &[Phase], machine: &Machine, plan: &Plan) -> Result<()> {
    let svg = contention(phases, &title(machine, plan))?;
    crate::write_file(path, &svg)
}

/// Where and how the figures were measured, for the chart's title.
fn title(machine: &Machine, plan: &Plan) -> String {
    format!(
        "Contention, {} s phases: {} ({} CPUs), {}, {}",
        plan.phase.as_secs_f64(),
        machine.cpu,
        machine.cpus,
        machine.revision,
        machine.started
    )
}

/// The SVG document: the two panels side by side under `title`.
pub fn contention(phases: &[Phase], title: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, (FONT, 20))?;
        let (left, right) = root.split_horizontally(SIZE.0 / 2);
        draw(&left, phases, &DECIDED)?;
        draw(&right, phases, &P50)?;
        root.present()?;
    }
    Ok(svg)
}

fn draw(area: &DrawingArea<SVGBackend<'_>, Shift>, phases: &[Phase], panel: &Panel) -> Result<()> {
    let ks = instances(phases);
    let k_max = ks.last().copied().unwrap_or(1);
    let top = phases.iter().map(panel.value).fold(0.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, (FONT, 18))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (0..k_max + 1).with_key_points(ks.clone()),
            0.0..top.max(1.0),
        )?;
    chart
        .configure_mesh()
        .x_desc("K instances")
        .y_desc(panel.axis)
        .x_labels(ks.len())
        // Bold lines at the ticks only: the light ones between them drown the series.
        .light_line_style(TRANSPARENT)
        .y_label_formatter(&|y| format!("{y:.*}", panel.decimals))
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .draw()?;
    for mode in [Mode::Handler, Mode::Ceiling] {
        // Filled, so the points show as dots on the line.
        let style = color(mode).filled().stroke_width(2);
        chart
            .draw_series(LineSeries::new(series(phases, mode, panel), style).point_size(4))?
            .label(mode.name())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The K values measured, ascending, once each: the x axis's ticks.
fn instances(phases: &[Phase]) -> Vec<usize> {
    let mut ks: Vec<usize> = phases.iter().map(|phase| phase.instances).collect();
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// (K, figure) of one mode's phases, in K order.
fn series(phases: &[Phase], mode: Mode, panel: &Panel) -> Vec<(usize, f64)> {
    let mut points: Vec<(usize, f64)> = phases
        .iter()
        .filter(|phase| phase.mode == mode)
        .map(|phase| (phase.instances, (panel.value)(phase)))
        .collect();
    points.sort_by_key(|&(k, _)| k);
    points
}
