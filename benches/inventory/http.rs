//! Just enough HTTP/1.1 for the two loopback stubs (the Lambda Runtime API and PutEvents):
//! keep-alive, Content-Length or chunked bodies, and each answer sent in one write on a
//! `TCP_NODELAY` socket, so no stub ever waits on Nagle and delayed ACKs (40 ms a time).

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    /// The client asked to close the connection after this request.
    pub close: bool,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads one request; `None` if the connection closed cleanly before it. Answers
/// `Expect: 100-continue` on the way.
pub async fn read_request(
    reader: &mut (impl AsyncBufRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let (Some(method), Some(path)) = (words.next(), words.next()) else {
        return Err(invalid("malformed request line"));
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let (mut length, mut chunked, mut close) = (0, false, false);
    loop {
        let header = read_line(reader).await?;
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(invalid("malformed header"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().map_err(|_| invalid("bad length"))?,
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            "expect" if value.eq_ignore_ascii_case("100-continue") => {
                writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            }
            _ => {}
        }
    }
    let body = if chunked {
        read_chunked(reader).await?
    } else {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        body
    };
    Ok(Some(Request {
        method,
        path,
        body,
        close,
    }))
}

async fn read_chunked(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader).await?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, then an empty line.
            while !read_line(reader).await?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).await?;
        if !read_line(reader).await?.is_empty() {
            return Err(invalid("chunk longer than its size"));
        }
    }
}

/// One line without its line ending; the connection closing mid-request is an error.
async fn read_line(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Status line, headers and body in one write.
pub async fn respond(
    writer: &mut (impl AsyncWrite + Unpin),
    status: &str,
    content_type: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    writer.write_all(&message).await?;
    writer.flush().await
}
