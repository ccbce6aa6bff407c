//! IAM authentication to RDS Proxy: instead of a stored password, the function signs a
//! short-lived auth token with its own AWS credentials and sends that as the password,
//! over TLS with the proxy's certificate verified.
//!
//! A token is a SigV4 presigned URL for `rds-db:connect`, without its `https://`: byte for
//! byte what botocore's `generate_db_auth_token` (and so `aws rds generate-db-auth-token`)
//! makes from the same inputs.
//!
//! Why not `aws_sdk_rds::auth_token::AuthTokenGenerator`: tried (aws-sdk-rds 1.159) and
//! measured. Only 2 of the 7 botocore vectors stayed equal (with temporary credentials,
//! every token a Lambda signs, the security token comes after the signature; a mixed-case
//! host signs differently; `:443` is dropped; spaces become `+`), and a user or host that
//! is not a valid URI part panics inside the SDK where this returns `RdsIamError::Signing`.
//! It cannot serve `TokenSource`, which needs the credentials' expiry. And it compiles the
//! whole RDS client: +80-90 s of release CPU (+19%), 2.96 GB peak compiler memory against
//! 1.17 GB, +14 kB of binary, to remove 40 lines.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// How long RDS accepts a token after its signing time.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// How long a token is reused. The function's timeout is seconds, so a connection opened
/// during an invocation still presents a token with minutes to spare.
pub const REUSE_FOR: Duration = Duration::from_secs(10 * 60);

/// A token signed with temporary credentials stops working when they expire.
const CREDENTIALS_EXPIRY_MARGIN: Duration = Duration::from_secs(60);

const SERVICE: &str = "rds-db";

/// SigV4's percent-encoding, the same as botocore's `percent_encode`: everything but
/// `A-Z a-z 0-9 - _ . ~`.
const SIGV4_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The signing parameters of a token, in botocore's order (the signature last).
const SIGNING_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
];

/// What a token opens: a database user on a host and port, in a region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub region: String,
}

impl Endpoint {
    /// The host, port and user that `options` connect with.
    pub fn of(options: &PgConnectOptions, region: impl Into<String>) -> Self {
        Self {
            host: options.get_host().to_owned(),
            port: options.get_port(),
            user: options.get_username().to_owned(),
            region: region.into(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "user {} at {}:{} in {}",
            self.user, self.host, self.port, self.region
        )
    }
}

/// A token, used as the database password. Its `Debug` output hides it: while it is
/// valid, it lets anyone in.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(String);

impl AuthToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(** redacted **)")
    }
}

/// Why there is no token. No variant carries the token or a secret.
#[derive(Debug, thiserror::Error)]
pub enum RdsIamError {
    #[error("no AWS credentials provider to sign RDS auth tokens with")]
    NoCredentialsProvider,
    #[error("no AWS region to sign RDS auth tokens for (AWS_REGION is not set)")]
    NoRegion,
    #[error("could not load the AWS credentials to sign an RDS auth token with")]
    Credentials(#[source] CredentialsError),
    #[error("could not sign an RDS auth token for {endpoint}")]
    Signing {
        endpoint: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Signs the token that lets `endpoint.user` connect until `now` + 15 minutes.
pub fn generate_auth_token(
    endpoint: &Endpoint,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<AuthToken, RdsIamError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| RdsIamError::Signing {
        endpoint: endpoint.to_string(),
        source,
    };
    let action = format!(
        "Action=connect&DBUser={}",
        utf8_percent_encode(&endpoint.user, SIGV4_ENCODE)
    );
    // botocore signs the host in lower case, but keeps it as given in the token.
    let url = format!(
        "https://{}:{}/?{action}",
        endpoint.host.to_ascii_lowercase(),
        endpoint.port
    );
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&endpoint.region)
        .name(SERVICE)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| failed(e.into()))?;
    let request = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::empty())
        .map_err(|e| failed(e.into()))?;
    let (instructions, _signature) = sign(request, &params.into())
        .map_err(|e| failed(e.into()))?
        .into_parts();

    let signing: String = SIGNING_PARAMS
        .iter()
        .filter_map(|name| {
            let (_, value) = instructions.params().iter().find(|(n, _)| n == name)?;
            Some(format!(
                "&{name}={}",
                utf8_percent_encode(value, SIGV4_ENCODE)
            ))
        })
        .collect();
    let token = format!("{}:{}/?{action}{signing}", endpoint.host, endpoint.port);
    Ok(AuthToken(token))
}

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Tokens for one endpoint, signed with the function's credentials, each reused for at
/// most [`REUSE_FOR`].
pub struct TokenSource {
    endpoint: Endpoint,
    credentials: SharedCredentialsProvider,
    clock: Clock,
    current: Mutex<Option<Signed>>,
}

struct Signed {
    token: AuthToken,
    signed_at: SystemTime,
    renew_at: SystemTime,
}

impl TokenSource {
    pub fn new(endpoint: Endpoint, credentials: SharedCredentialsProvider) -> Self {
        Self {
            endpoint,
            credentials,
            clock: Arc::new(SystemTime::now),
            current: Mutex::new(None),
        }
    }

    /// Signs with this clock instead of the system's, so a test can move time.
    pub fn with_clock(self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Self {
            clock: Arc::new(clock),
            ..self
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The current token, or a new one once it is due for renewal.
    pub async fn token(&self) -> Result<AuthToken, RdsIamError> {
        let now = (self.clock)();
        if let Some(token) = self.reusable(now) {
            return Ok(token);
        }
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(RdsIamError::Credentials)?;
        let token = generate_auth_token(&self.endpoint, &credentials, now)?;
        let mut renew_at = now + REUSE_FOR;
        if let Some(expiry) = credentials.expiry() {
            let before_expiry = expiry
                .checked_sub(CREDENTIALS_EXPIRY_MARGIN)
                .unwrap_or(expiry);
            renew_at = renew_at.min(before_expiry);
        }
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Signed {
            token: token.clone(),
            signed_at: now,
            renew_at,
        });
        tracing::debug!(endpoint = %self.endpoint, "signed a new RDS auth token");
        Ok(token)
    }

    fn reusable(&self, now: SystemTime) -> Option<AuthToken> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        // A clock that went back could make a token look younger than it is.
        current
            .as_ref()
            .filter(|signed| signed.signed_at <= now && now < signed.renew_at)
            .map(|signed| signed.token.clone())
    }
}

/// Requires TLS and a server certificate that chains to a trusted root and names the
/// host. sqlx (built with `tls-rustls-aws-lc-rs`) trusts the `webpki-roots` bundle, which
/// holds the Amazon roots that RDS Proxy certificates chain to.
pub fn require_verified_tls(options: PgConnectOptions) -> PgConnectOptions {
    options.ssl_mode(PgSslMode::VerifyFull)
}

impl TokenSource {
    /// Signs with the SDK config's credentials and region, for the host, port and user
    /// of `options`.
    pub fn from_sdk_config(
        options: &PgConnectOptions,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, RdsIamError> {
        let credentials = aws
            .credentials_provider()
            .ok_or(RdsIamError::NoCredentialsProvider)?;
        let region = aws.region().ok_or(RdsIamError::NoRegion)?;
        Ok(Self::new(
            Endpoint::of(options, region.as_ref()),
            credentials,
        ))
    }
}

impl RdsIamError {
    /// Loading credentials can fail for a moment (the credentials endpoint is busy); a
    /// missing provider or region, or a signing failure, fails the same way every time.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Credentials(_))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::UNIX_EPOCH;

    use aws_credential_types::provider::future;

    use super::*;

    // Expected tokens made by `RDS.Client.generate_db_auth_token` of botocore 1.44.8 (and
    // 1.43.127) with its Python signer, `botocore.auth.get_current_datetime` patched to the
    // same instant. tests/api/rds_iam.rs asks botocore again at test time.

    #[test]
    fn a_token_matches_botocore_for_long_term_credentials() {
        // The vector of aws-sdk-rust's own RDS signer test, which botocore reproduces.
        let endpoint = Endpoint {
            host: "prod-instance.us-east-1.rds.amazonaws.com".into(),
            port: 3306,
            user: "peccy".into(),
            region: "us-east-1".into(),
        };
        let credentials = Credentials::new("akid", "secret", None, None, "test");

        let token = generate_auth_token(&endpoint, &credentials, at(1_724_709_600));

        assert_eq!(
            token.ok().as_ref().map(AuthToken::as_str),
            Some(
                "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=peccy\
                 &X-Amz-Algorithm=AWS4-HMAC-SHA256\
                 &X-Amz-Credential=akid%2F20240826%2Fus-east-1%2Frds-db%2Faws4_request\
                 &X-Amz-Date=20240826T220000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
                 &X-Amz-Signature=dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89"
            )
        );
    }

    #[test]
    fn a_token_matches_botocore_for_temporary_credentials() {
        let token = generate_auth_token(&proxy(), &temporary_credentials(), at(1_732_492_800));

        assert_eq!(
            token.ok().as_ref().map(AuthToken::as_str),
            Some(
                "skyledger-proxy.proxy-c0ffee123456.eu-west-1.rds.amazonaws.com:5432/\
                 ?Action=connect&DBUser=inventory_app&X-Amz-Algorithm=AWS4-HMAC-SHA256\
                 &X-Amz-Credential=ASIAEXAMPLEKEY123456%2F20241125\
                 %2Feu-west-1%2Frds-db%2Faws4_request\
                 &X-Amz-Date=20241125T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
                 &X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2F%2Btoken%3D%3D\
                 &X-Amz-Signature=8b6aefb112c2063db2e25b509ab33212752482e5f34c102a9678dd55a29dc592"
            )
        );
    }

    #[tokio::test]
    async fn a_token_is_reused_for_ten_minutes_then_renewed() {
        let (clock, tokens) = source_with_clock(temporary_credentials());

        let first = tokens.token().await.ok();
        clock.store(START + 599, Ordering::SeqCst);
        let reused = tokens.token().await.ok();
        clock.store(START + 600, Ordering::SeqCst);
        let renewed = tokens.token().await.ok();

        assert!(first.is_some());
        assert_eq!(reused, first);
        assert_ne!(renewed, first);
        assert!(renewed.is_some_and(|t| t.as_str().contains("&X-Amz-Date=20241125T001000Z&")));
    }

    #[tokio::test]
    async fn a_token_is_renewed_when_the_clock_goes_back() {
        let (clock, tokens) = source_with_clock(temporary_credentials());

        let first = tokens.token().await.ok();
        clock.store(START - 1, Ordering::SeqCst);
        let after = tokens.token().await.ok();

        assert_ne!(after, first);
    }

    #[tokio::test]
    async fn a_token_is_renewed_a_minute_before_its_credentials_expire() {
        let expiring = Credentials::new(
            "ASIA",
            "secret",
            Some("t".into()),
            Some(at(START + 300)),
            "test",
        );
        let (clock, tokens) = source_with_clock(expiring);

        let first = tokens.token().await.ok();
        clock.store(START + 239, Ordering::SeqCst);
        let reused = tokens.token().await.ok();
        clock.store(START + 240, Ordering::SeqCst);
        let renewed = tokens.token().await.ok();

        assert_eq!(reused, first);
        assert_ne!(renewed, first);
    }

    #[tokio::test]
    async fn credentials_that_cannot_be_loaded_are_reported_as_such() {
        let tokens = TokenSource::new(proxy(), SharedCredentialsProvider::new(NoCredentials));

        let error = tokens.token().await.err();

        assert!(
            matches!(error, Some(RdsIamError::Credentials(_))),
            "{error:?}"
        );
        assert_eq!(
            error.map(|e| e.to_string()),
            Some("could not load the AWS credentials to sign an RDS auth token with".into())
        );
    }

    #[test]
    fn a_host_that_is_not_a_host_fails_signing_with_the_endpoint_named() {
        let endpoint = Endpoint {
            host: "not a host".into(),
            ..proxy()
        };

        let error = generate_auth_token(&endpoint, &temporary_credentials(), at(START)).err();

        assert_eq!(
            error.map(|e| e.to_string()),
            Some(
                "could not sign an RDS auth token for user inventory_app at not a host:5432 \
                 in eu-west-1"
                    .into()
            )
        );
    }

    #[test]
    fn debug_output_shows_neither_the_token_nor_the_secret() {
        let token = generate_auth_token(&proxy(), &temporary_credentials(), at(START)).ok();

        let shown = format!("{token:?}");

        assert_eq!(shown, "Some(AuthToken(** redacted **))");
    }

    #[test]
    fn an_sdk_config_without_credentials_or_region_is_named_as_the_problem() {
        let options = PgConnectOptions::new_without_pgpass().host("proxy.example");
        let no_credentials = aws_config::SdkConfig::builder().build();
        let no_region = aws_config::SdkConfig::builder()
            .credentials_provider(SharedCredentialsProvider::new(temporary_credentials()))
            .build();

        let errors = [
            TokenSource::from_sdk_config(&options, &no_credentials).err(),
            TokenSource::from_sdk_config(&options, &no_region).err(),
        ];

        assert!(matches!(
            errors,
            [
                Some(RdsIamError::NoCredentialsProvider),
                Some(RdsIamError::NoRegion)
            ]
        ));
    }

    #[test]
    fn iam_connections_require_tls_with_a_verified_certificate() {
        let options = PgConnectOptions::new_without_pgpass()
            .host("proxy.example")
            .username("inventory_app")
            .ssl_mode(PgSslMode::Prefer);

        let database = crate::db::Database::with_iam(
            options,
            TokenSource::new(
                proxy(),
                SharedCredentialsProvider::new(temporary_credentials()),
            ),
            1,
        );

        let options = database.options();
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
        assert_eq!(options.get_host(), "proxy.example");
    }

    #[test]
    fn only_loading_credentials_is_worth_retrying() {
        let loading = RdsIamError::Credentials(CredentialsError::not_loaded("busy"));

        assert!(loading.is_retryable());
        assert!(!RdsIamError::NoRegion.is_retryable());
        assert!(!RdsIamError::NoCredentialsProvider.is_retryable());
    }

    const START: u64 = 1_732_492_800;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn proxy() -> Endpoint {
        Endpoint {
            host: "skyledger-proxy.proxy-c0ffee123456.eu-west-1.rds.amazonaws.com".into(),
            port: 5432,
            user: "inventory_app".into(),
            region: "eu-west-1".into(),
        }
    }

    fn temporary_credentials() -> Credentials {
        Credentials::new(
            "ASIAEXAMPLEKEY123456",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("IQoJb3JpZ2luX2VjEXAMPLE/+token==".into()),
            None,
            "test",
        )
    }

    /// A source whose clock starts at `START` and moves when the test stores to it.
    fn source_with_clock(credentials: Credentials) -> (Arc<AtomicU64>, TokenSource) {
        let clock = Arc::new(AtomicU64::new(START));
        let now = Arc::clone(&clock);
        let tokens = TokenSource::new(proxy(), SharedCredentialsProvider::new(credentials))
            .with_clock(move || at(now.load(Ordering::SeqCst)));
        (clock, tokens)
    }

    #[derive(Debug)]
    struct NoCredentials;

    impl ProvideCredentials for NoCredentials {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
                "no credentials in the environment",
            )))
        }
    }
}
