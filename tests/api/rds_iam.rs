//! IAM auth against independent judges. botocore, run at test time, must sign the same
//! tokens byte for byte. A fake RDS Proxy on the loopback (TLS with a throwaway CA, then
//! cleartext password auth, each token checked for its signature and age) must let a
//! good token in, and turn a wrong or expired one away with the message RDS Proxy sends,
//! promptly. The connections must refuse to send a token to a proxy they cannot verify.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aeronode_inventory::db::{Database, DbError};
use aeronode_inventory::deadline::Deadline;
use aeronode_inventory::rds_iam::{Endpoint, TOKEN_LIFETIME, TokenSource, generate_auth_token};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Every wait here ends: an answer later than this is a hang. Opening a connection gives up
/// after 5 s.
const BOUND: Duration = Duration::from_secs(10);
const REGION: &str = "eu-west-1";
const USER: &str = "inventory_app";

#[tokio::test]
async fn tokens_are_byte_for_byte_those_of_botocore() {
    let cases = [
        Case {
            // An RDS Proxy endpoint with the function's temporary credentials.
            host: "skyledger-proxy.proxy-c0ffee123456.eu-west-1.rds.amazonaws.com",
            port: 5432,
            user: "inventory_app",
            region: "eu-west-1",
            access_key_id: "ASIAEXAMPLEKEY123456",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE/+token=="),
            now: 1_732_492_800,
        },
        Case {
            // Long-term keys; a host in mixed case is signed in lower case but kept as is.
            host: "SkyLedger-DB.cluster-C0FFEE.us-east-1.rds.amazonaws.com",
            port: 3306,
            user: "admin",
            region: "us-east-1",
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "secret",
            session_token: None,
            now: 951_868_799, // 2000-02-29T23:59:59Z
        },
        Case {
            // The default HTTPS port is left out of the signed host; odd characters in
            // the user name are percent-encoded.
            host: "db.example.internal",
            port: 443,
            user: "app user+ops@sky/ledger=1~x_y.z",
            region: "ap-southeast-2",
            access_key_id: "ASIA2",
            secret_access_key: "s3cr3t+/=",
            session_token: Some("FwoGZXIvYXdzE//////////wEaDA+b=="),
            now: 1_767_225_599, // 2025-12-31T23:59:59Z
        },
        Case {
            // A non-ASCII user name, another partition, the far future.
            host: "10.0.12.34",
            port: 1,
            user: "çağrı_ü",
            region: "cn-north-1",
            access_key_id: "AKIDCN",
            secret_access_key: "cn-secret",
            session_token: Some("token with spaces & ampersands"),
            now: 4_102_444_800, // 2100-01-01T00:00:00Z
        },
        Case {
            host: "proxy.internal",
            port: 65_535,
            user: "u",
            region: "us-gov-west-1",
            access_key_id: "AKIDGOV",
            secret_access_key: "gov",
            session_token: None,
            now: 0,
        },
    ];

    let ours: Vec<String> = cases
        .iter()
        .map(|case| {
            let token = generate_auth_token(&case.endpoint(), &case.credentials(), case.now());
            token.expect("a token").as_str().to_owned()
        })
        .collect();
    let (python, exact) = botocore_tokens(&cases, Signer::Python).await;
    let (crt, reordered) = botocore_tokens(&cases, Signer::AwsCrtIfInstalled).await;

    assert_eq!(exact.len(), cases.len());
    assert_eq!(reordered.len(), cases.len());
    for (((case, ours), exact), reordered) in cases.iter().zip(&ours).zip(&exact).zip(&reordered) {
        assert_eq!(ours, exact, "{python} disagrees for {case:?}");
        // The C signer lists the same parameters in another order, so the same signature
        // is all that can be asked.
        assert_eq!(
            parameters(ours),
            parameters(reordered),
            "{crt} disagrees for {case:?}"
        );
    }
}

/// A token's host and path, then its query parameters in sorted order.
fn parameters(token: &str) -> Vec<&str> {
    let (target, query) = token.split_once('?').unwrap_or((token, ""));
    let mut parameters: Vec<&str> = query.split('&').collect();
    parameters.sort_unstable();
    parameters.insert(0, target);
    parameters
}

#[tokio::test]
async fn connections_opened_later_sign_in_with_a_renewed_token() {
    let ca = TestCa::new("AeroNode test CA");
    let proxy = FakeProxy::start(Tls::Offer(ca.server_for("127.0.0.1"))).await;
    let started = unix_now() - 12 * 60;
    let clock = Arc::new(AtomicU64::new(started));
    let iam = proxy.iam_pool(&ca, function_credentials(), &clock);

    connect(&iam).await.expect("a fresh token signs in");
    // The connection goes away (idle timeout, proxy restart), and a later use opens one.
    iam.close_idle();
    clock.store(started + 11 * 60, Ordering::SeqCst);
    connect(&iam).await.expect("the renewed token signs in");

    let passwords = proxy.passwords();
    assert_eq!(passwords.len(), 2, "one sign-in per connection");
    assert_ne!(
        passwords[0], passwords[1],
        "the second connection got a new token"
    );
    assert_eq!(signing_time(&passwords[1]), Some(at(started + 11 * 60)));
}

#[tokio::test]
async fn a_wrong_token_is_refused_promptly_with_the_proxys_reason() {
    let ca = TestCa::new("AeroNode test CA");
    let proxy = FakeProxy::start(Tls::Offer(ca.server_for("127.0.0.1"))).await;
    let wrong_secret = Credentials::new("ASIAFUNCTION", "not-the-secret", None, None, "test");
    let iam = proxy.iam_pool(&ca, wrong_secret, &clock_now());

    let error = connect(&iam).await.err();

    assert_refused_by_the_proxy(error);
    assert_eq!(proxy.passwords().len(), 1);
}

#[tokio::test]
async fn an_expired_token_is_refused_promptly_with_the_proxys_reason() {
    let ca = TestCa::new("AeroNode test CA");
    let proxy = FakeProxy::start(Tls::Offer(ca.server_for("127.0.0.1"))).await;
    let twenty_minutes_ago = Arc::new(AtomicU64::new(unix_now() - 20 * 60));
    let iam = proxy.iam_pool(&ca, function_credentials(), &twenty_minutes_ago);

    let error = connect(&iam).await.err();

    assert_refused_by_the_proxy(error);
}

#[tokio::test]
async fn a_proxy_certificate_from_an_unknown_ca_is_refused_before_the_token_is_sent() {
    let impostor = TestCa::new("Impostor CA");
    let proxy = FakeProxy::start(Tls::Offer(impostor.server_for("127.0.0.1"))).await;
    let iam = proxy.iam_pool(
        &TestCa::new("AeroNode test CA"),
        function_credentials(),
        &clock_now(),
    );

    let error = connect(&iam).await.err().map(|e| e.to_string());

    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("invalid peer certificate: UnknownIssuer")),
        "{error:?}"
    );
    assert!(proxy.passwords().is_empty());
}

#[tokio::test]
async fn a_proxy_certificate_for_another_host_is_refused_before_the_token_is_sent() {
    let ca = TestCa::new("AeroNode test CA");
    let proxy = FakeProxy::start(Tls::Offer(ca.server_for("proxy.example"))).await;
    let iam = proxy.iam_pool(&ca, function_credentials(), &clock_now());

    let error = connect(&iam).await.err().map(|e| e.to_string());

    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("invalid peer certificate: certificate not valid for")),
        "{error:?}"
    );
    assert!(proxy.passwords().is_empty());
}

#[tokio::test]
async fn a_proxy_that_refuses_tls_is_not_sent_the_token() {
    let ca = TestCa::new("AeroNode test CA");
    let proxy = FakeProxy::start(Tls::Refuse).await;
    let iam = proxy.iam_pool(&ca, function_credentials(), &clock_now());

    let error = connect(&iam).await.err().map(|e| e.to_string());

    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("server does not support TLS")),
        "{error:?}"
    );
    assert!(proxy.passwords().is_empty());
}

#[tokio::test]
async fn a_proxy_that_never_answers_fails_the_acquire_within_its_timeout() {
    let ca = TestCa::new("AeroNode test CA");
    let proxy = FakeProxy::start(Tls::Silent).await;
    let iam = proxy.iam_pool(&ca, function_credentials(), &clock_now());

    let error = connect(&iam).await.err();

    assert!(matches!(error, Some(DbError::OutOfTime)), "{error:?}");
}

/// Opens a connection as an invocation does (signing a token when one is due); panics on
/// a hang.
async fn connect(iam: &Database) -> Result<(), DbError> {
    crate::quiet_logs();
    timeout(BOUND, async {
        let mut session = iam.session(Deadline::after(BOUND)).await?;
        session.connection().await.map(|_| ())
    })
    .await
    .expect("an answer within the bound, not a hang")
}

fn assert_refused_by_the_proxy(error: Option<DbError>) {
    let code = error.as_ref().and_then(DbError::sqlstate);
    let message = error.as_ref().map(|e| e.to_string());
    assert_eq!(code, Some("28P01"), "{message:?}");
    assert!(
        message.as_deref().is_some_and(|m| m.ends_with(
            "error returned from database: PAM authentication failed for user \"inventory_app\""
        )),
        "{message:?}"
    );
    assert!(
        !error.is_some_and(|e| e.is_retryable()),
        "a refused token stays refused"
    );
}

/// The credentials the function signs with, which the fake proxy also knows, as IAM does.
fn function_credentials() -> Credentials {
    Credentials::new(
        "ASIAFUNCTION",
        "function-secret",
        Some("function-session".into()),
        None,
        "test",
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn clock_now() -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(unix_now()))
}

/// When a token says it was signed.
fn signing_time(token: &str) -> Option<SystemTime> {
    let date = token
        .split('&')
        .find_map(|param| param.strip_prefix("X-Amz-Date="))?;
    let signed = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ").ok()?;
    Some(at(u64::try_from(signed.and_utc().timestamp()).ok()?))
}

// --- botocore, the independent implementation ---

#[derive(Debug)]
struct Case {
    host: &'static str,
    port: u16,
    user: &'static str,
    region: &'static str,
    access_key_id: &'static str,
    secret_access_key: &'static str,
    session_token: Option<&'static str>,
    now: u64,
}

impl Case {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: self.host.into(),
            port: self.port,
            user: self.user.into(),
            region: self.region.into(),
        }
    }

    fn credentials(&self) -> Credentials {
        Credentials::new(
            self.access_key_id,
            self.secret_access_key,
            self.session_token.map(str::to_owned),
            None,
            "test",
        )
    }

    fn now(&self) -> SystemTime {
        at(self.now)
    }
}

/// Reads cases as JSON on stdin; prints botocore's version, which signer it used, and its
/// token for each case, with botocore's clock fixed at the case's `now`.
const BOTOCORE_TOKENS: &str = r#"
import datetime, json, sys
from unittest import mock
import botocore, botocore.auth, botocore.compat, botocore.session

assert hasattr(botocore.auth, "get_current_datetime"), f"botocore {botocore.__version__} is too old"
clocks = [botocore.auth]
if botocore.compat.HAS_CRT:
    import botocore.crt.auth
    clocks.append(botocore.crt.auth)
session = botocore.session.get_session()
tokens = []
for case in json.load(sys.stdin):
    client = session.create_client(
        "rds",
        region_name=case["region"],
        aws_access_key_id=case["access_key_id"],
        aws_secret_access_key=case["secret_access_key"],
        aws_session_token=case["session_token"],
    )
    now = datetime.datetime.fromtimestamp(case["now"], tz=datetime.timezone.utc)
    patches = [mock.patch.object(m, "get_current_datetime", return_value=now) for m in clocks]
    for patch in patches:
        patch.start()
    tokens.append(client.generate_db_auth_token(
        DBHostname=case["host"], Port=case["port"], DBUsername=case["user"],
        Region=case["region"]))
    for patch in patches:
        patch.stop()
signer = "awscrt" if botocore.compat.HAS_CRT else "python"
json.dump({"botocore": botocore.__version__, "signer": signer, "tokens": tokens}, sys.stdout)
"#;

/// Which of botocore's two SigV4 signers makes the tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signer {
    /// botocore's own, in Python: what a plain `pip install boto3` signs with.
    Python,
    /// The AWS Common Runtime's, in C, which botocore prefers when `awscrt` is installed
    /// (SAM CLI brings it); botocore's own when it is not.
    AwsCrtIfInstalled,
}

/// botocore's tokens for `cases`, and which botocore and signer made them.
async fn botocore_tokens(cases: &[Case], signer: Signer) -> (String, Vec<String>) {
    let input: Vec<Value> = cases
        .iter()
        .map(|case| {
            json!({
                "host": case.host, "port": case.port, "user": case.user, "region": case.region,
                "access_key_id": case.access_key_id,
                "secret_access_key": case.secret_access_key,
                "session_token": case.session_token, "now": case.now,
            })
        })
        .collect();
    let mut child = Command::new(python())
        .args(["-c", BOTOCORE_TOKENS])
        // No profile or config file of this machine takes part.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_PROFILE")
        .env(
            "BOTO_DISABLE_CRT",
            if signer == Signer::Python {
                "true"
            } else {
                "false"
            },
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let mut stdin = child.stdin.take().expect("python's stdin");
    stdin
        .write_all(&serde_json::to_vec(&input).expect("cases as JSON"))
        .await
        .expect("python reads the cases");
    drop(stdin);
    let output = timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("botocore answers within two minutes")
        .expect("python runs");
    assert!(
        output.status.success(),
        "botocore failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("botocore's JSON");
    let tokens = answer["tokens"]
        .as_array()
        .expect("a list of tokens")
        .iter()
        .map(|token| token.as_str().expect("a token").to_owned())
        .collect();
    let made_by = format!(
        "botocore {} ({} signer)",
        answer["botocore"], answer["signer"]
    );
    (made_by, tokens)
}

/// `$AERONODE_TOOLS_BIN/python`, else the venv `scripts/test.sh` installs (botocore comes
/// with moto).
fn python() -> PathBuf {
    let bin = std::env::var_os("AERONODE_TOOLS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin"));
    let path = bin.join("python");
    assert!(
        path.is_file(),
        "{} not found: run scripts/test.sh once (it installs the test tools into .tools/venv), \
         or set AERONODE_TOOLS_BIN to a directory whose python has botocore",
        path.display()
    );
    path
}

// --- the fake RDS Proxy ---

/// A certificate authority that exists only for one test; `name` tells two apart.
struct TestCa(CertifiedIssuer<'static, KeyPair>);

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("a CA key");
        Self(CertifiedIssuer::self_signed(params, key).expect("a CA certificate"))
    }

    fn pem(&self) -> Vec<u8> {
        self.0.pem().into_bytes()
    }

    /// A server certificate for `name` (a host name or an IP address), signed by this CA.
    fn server_for(&self, name: &str) -> Arc<ServerConfig> {
        let key = KeyPair::generate().expect("a server key");
        let certificate = CertificateParams::new(vec![name.to_owned()])
            .and_then(|params| params.signed_by(&key, &self.0))
            .expect("a server certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .and_then(|builder| {
                builder
                    .with_no_client_auth()
                    .with_single_cert(vec![certificate.der().clone()], key)
            })
            .expect("a TLS server config");
        Arc::new(config)
    }
}

/// What the fake proxy does when a client asks for TLS.
enum Tls {
    /// Answers `S` and presents this certificate.
    Offer(Arc<ServerConfig>),
    /// Answers `N`, as a server without TLS does, then goes on in the clear.
    Refuse,
    /// Never answers.
    Silent,
}

/// A PostgreSQL front end that authenticates like RDS Proxy with IAM auth: it asks for a
/// cleartext password and accepts only a token signed with the function's credentials for
/// this host, port and user within the last 15 minutes. Stops when dropped.
struct FakeProxy {
    address: SocketAddr,
    passwords: Arc<Mutex<Vec<String>>>,
    accepting: JoinHandle<()>,
}

impl Drop for FakeProxy {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which ends every session.
        self.accepting.abort();
    }
}

impl FakeProxy {
    async fn start(tls: Tls) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("the bound address");
        let passwords = Arc::new(Mutex::new(Vec::new()));
        let tls = Arc::new(tls);
        let judge = Arc::new(Judge {
            port: address.port(),
            credentials: function_credentials(),
        });
        let recorded = Arc::clone(&passwords);
        let accepting = tokio::spawn(async move {
            let mut sessions = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (tls, judge, recorded) =
                    (Arc::clone(&tls), Arc::clone(&judge), Arc::clone(&recorded));
                sessions.spawn(async move {
                    // A session that goes quiet is dropped, so nothing here waits forever.
                    let _ = timeout(BOUND, serve(stream, &tls, &judge, &recorded)).await;
                });
            }
        });
        Self {
            address,
            passwords,
            accepting,
        }
    }

    /// Every password the proxy was sent, in order.
    fn passwords(&self) -> Vec<String> {
        self.passwords
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The connections as production builds them, aimed at this proxy and trusting `ca`,
    /// signing with `credentials` at the time `clock` holds (seconds since 1970).
    fn iam_pool(&self, ca: &TestCa, credentials: Credentials, clock: &Arc<AtomicU64>) -> Database {
        let options = PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(self.address.port())
            .username(USER)
            .database("skyledger")
            .ssl_root_cert_from_pem(ca.pem());
        let clock = Arc::clone(clock);
        let tokens = TokenSource::new(
            Endpoint::of(&options, REGION),
            SharedCredentialsProvider::new(credentials),
        )
        .with_clock(move || at(clock.load(Ordering::SeqCst)));
        Database::with_iam(options, tokens, 1)
    }
}

/// What IAM and RDS Proxy check: a token signed with the function's credentials for this
/// host, port and user, no more than 15 minutes ago.
struct Judge {
    port: u16,
    credentials: Credentials,
}

impl Judge {
    fn accepts(&self, token: &str, user: &str) -> bool {
        let Some(signed_at) = signing_time(token) else {
            return false;
        };
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: self.port,
            user: user.into(),
            region: REGION.into(),
        };
        let genuine = generate_auth_token(&endpoint, &self.credentials, signed_at)
            .is_ok_and(|expected| expected.as_str() == token);
        let fresh = SystemTime::now()
            .duration_since(signed_at)
            .is_ok_and(|age| age <= TOKEN_LIFETIME);
        genuine && fresh
    }
}

const SSL_REQUEST: i32 = 80_877_103;
const AUTHENTICATION_OK: i32 = 0;
const AUTHENTICATION_CLEARTEXT_PASSWORD: i32 = 3;

async fn serve(
    mut stream: TcpStream,
    tls: &Tls,
    judge: &Judge,
    passwords: &Mutex<Vec<String>>,
) -> io::Result<()> {
    let request = read_startup_packet(&mut stream).await?;
    if request != SSL_REQUEST.to_be_bytes() {
        return Err(io::Error::other("expected an SSLRequest first"));
    }
    match tls {
        Tls::Offer(config) => {
            stream.write_all(b"S").await?;
            let stream = TlsAcceptor::from(Arc::clone(config)).accept(stream).await?;
            session(stream, judge, passwords).await
        }
        Tls::Refuse => {
            stream.write_all(b"N").await?;
            session(stream, judge, passwords).await
        }
        Tls::Silent => std::future::pending().await,
    }
}

/// Startup, password, verdict; if the client is let in, holds the session until it leaves.
async fn session<S>(mut stream: S, judge: &Judge, passwords: &Mutex<Vec<String>>) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let startup = read_startup_packet(&mut stream).await?;
    let user = startup_parameter(&startup, "user").unwrap_or_default();
    stream
        .write_all(&authentication(AUTHENTICATION_CLEARTEXT_PASSWORD))
        .await?;
    stream.flush().await?;
    let (_password_message, body) = read_message(&mut stream).await?;
    let token = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).into_owned();
    passwords
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(token.clone());

    if !judge.accepts(&token, &user) {
        // What RDS Proxy answers to a wrong or expired IAM token.
        let message = format!("PAM authentication failed for user \"{user}\"");
        stream.write_all(&error_response("28P01", &message)).await?;
        stream.flush().await?;
        return Ok(());
    }
    stream.write_all(&authentication(AUTHENTICATION_OK)).await?;
    // BackendKeyData (process id, secret key), then ReadyForQuery, idle.
    stream
        .write_all(&message(b'K', &[0, 0, 0, 42, 0, 0, 0, 7]))
        .await?;
    stream.write_all(&message(b'Z', b"I")).await?;
    stream.flush().await?;
    // Until Terminate or the end of the stream.
    while read_message(&mut stream)
        .await
        .is_ok_and(|(tag, _)| tag != b'X')
    {}
    Ok(())
}

/// A length-prefixed packet without a type byte: SSLRequest or StartupMessage.
async fn read_startup_packet(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<Vec<u8>> {
    let length = stream.read_i32().await?;
    read_body(stream, length).await
}

/// A type byte, then a length-prefixed body.
async fn read_message(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<(u8, Vec<u8>)> {
    let tag = stream.read_u8().await?;
    let length = stream.read_i32().await?;
    Ok((tag, read_body(stream, length).await?))
}

async fn read_body(stream: &mut (impl AsyncRead + Unpin), length: i32) -> io::Result<Vec<u8>> {
    let length = usize::try_from(length)
        .ok()
        .filter(|length| (4..=10_000).contains(length))
        .ok_or_else(|| io::Error::other("implausible message length"))?;
    let mut body = vec![0; length - 4];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

/// A StartupMessage is the protocol version, then NUL-terminated names and values.
fn startup_parameter(startup: &[u8], name: &str) -> Option<String> {
    let mut fields = startup.get(4..)?.split(|byte| *byte == 0);
    while let Some(field) = fields.next() {
        let value = fields.next()?;
        if field == name.as_bytes() {
            return Some(String::from_utf8_lossy(value).into_owned());
        }
    }
    None
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let length = i32::try_from(body.len() + 4).expect("a short message");
    let mut message = vec![tag];
    message.extend(length.to_be_bytes());
    message.extend(body);
    message
}

fn authentication(code: i32) -> Vec<u8> {
    message(b'R', &code.to_be_bytes())
}

fn error_response(code: &str, text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', code), (b'M', text)] {
        body.push(field);
        body.extend(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    message(b'E', &body)
}
