//! TLS for every connection Zart opens (the pool, the LISTEN connection, `zart migrate`): reads
//! `sslmode` and `sslrootcert` from the database URL and builds the one rustls connector they
//! call for, with libpq's meaning for each mode (see `docs/tls.md`).
//!
//! tokio-postgres understands only `disable`, `prefer` and `require`, and never checks a
//! certificate; [`split_url`] takes both settings out of the URL before the driver parses the
//! rest, and the [`Tls`] it returns does the checking. The driver's own `sslmode` is set to the
//! wire behaviour (`verify-ca` and `verify-full` both mean "TLS or fail").

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres_rustls::MakeRustlsConnect;
use zart::Error;

/// How a connection uses TLS: libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, else plain; the certificate is checked only against an
    /// `sslrootcert` given in the URL.
    Prefer,
    /// TLS or fail; the certificate is checked only against an `sslrootcert` given in the URL.
    Require,
    /// TLS, and the server's certificate chain must lead to a trusted CA; the host name is not
    /// checked.
    VerifyCa,
    /// TLS, a trusted chain, and a certificate issued for the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The mode as written in a URL (`verify-full`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What the driver does on the wire: whether TLS is asked for, and whether it is a must.
    fn wire(self) -> WireMode {
        match self {
            SslMode::Disable => WireMode::Disable,
            SslMode::Prefer => WireMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = Error;

    /// Parses a mode as libpq spells it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `sslmode` for any other value.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(Error::invalid(
                "sslmode",
                format!("{other:?} is not one of disable, prefer, require, verify-ca, verify-full"),
            )),
        }
    }
}

/// The TLS settings of a connection and the connector built from them (cheap to clone).
#[derive(Clone)]
pub struct Tls {
    mode: SslMode,
    root_cert: Option<PathBuf>,
    connector: MakeRustlsConnect,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("mode", &self.mode)
            .field("root_cert", &self.root_cert)
            .finish()
    }
}

impl Tls {
    /// Builds the connector for `mode`, trusting the PEM certificates in `root_cert`, or, for
    /// `verify-ca` and `verify-full` without one, the Mozilla roots built into this binary.
    ///
    /// As in libpq, `prefer` and `require` check the chain (not the host name) when a
    /// `root_cert` is given, and check nothing otherwise; `disable` ignores `root_cert`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `sslrootcert` and the path when the file cannot be read,
    /// holds no PEM certificate, or holds one that is not a valid certificate.
    pub fn new(mode: SslMode, root_cert: Option<&Path>) -> Result<Self, Error> {
        let roots = match (mode, root_cert) {
            (SslMode::Disable, _) => None,
            (_, Some(path)) => Some(read_roots(path)?),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => Some(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
            (_, None) => None,
        };
        // ring builds with a C compiler alone (aws-lc-rs wants more tools and minutes of build);
        // rustls 0.23.48 deprecates it for lacking post-quantum key exchange (docs/tls.md).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid("sslmode", format!("no usable TLS version: {e}")))?;
        let config = match (mode, roots) {
            (SslMode::VerifyFull, Some(roots)) => builder.with_root_certificates(roots),
            (_, roots) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly {
                    roots: roots.map(Arc::new),
                    provider,
                })),
        }
        .with_no_client_auth();
        Ok(Tls {
            mode,
            root_cert: root_cert.map(Path::to_path_buf),
            connector: MakeRustlsConnect::new(config),
        })
    }

    /// The settings tokio-postgres can express on its own: `disable`, `prefer` or `require`
    /// from `config`, without any certificate check.
    ///
    /// # Errors
    /// As [`Tls::new`] (never for these modes in practice).
    pub fn from_config(config: &tokio_postgres::Config) -> Result<Self, Error> {
        let mode = match config.get_ssl_mode() {
            WireMode::Disable => SslMode::Disable,
            WireMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        Tls::new(mode, None)
    }

    /// The mode.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The CA file the server's certificate is checked against, if one was given.
    pub fn root_cert(&self) -> Option<&Path> {
        self.root_cert.as_deref()
    }

    /// Sets the driver's own `sslmode` to this mode's wire behaviour.
    pub(crate) fn apply(&self, config: &mut tokio_postgres::Config) {
        config.ssl_mode(self.mode.wire());
    }

    /// The connector to hand to tokio-postgres or deadpool-postgres.
    pub(crate) fn connector(&self) -> MakeRustlsConnect {
        self.connector.clone()
    }
}

/// Splits a `postgres://` URL into the driver's settings and the TLS settings, taking
/// `sslmode` and `sslrootcert` out of its query (tokio-postgres would refuse `verify-ca`,
/// `verify-full` and `sslrootcert`). Without `sslmode` the mode is `prefer`, as in libpq.
/// A key=value connection string is passed to the driver as it is.
///
/// # Errors
/// [`Error::InvalidInput`] naming `database url` for a URL the driver refuses, `sslmode` for an
/// unknown mode, or `sslrootcert` for a CA file that cannot be used (see [`Tls::new`]).
pub fn split_url(url: &str) -> Result<(tokio_postgres::Config, Tls), Error> {
    let UrlParts {
        rest,
        mode,
        root_cert,
    } = take_tls_params(url)?;
    let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| {
        Error::invalid(
            "database url",
            format!("{e} (expected postgres://user:password@host:port/database)"),
        )
    })?;
    let tls = match mode {
        Some(mode) => Tls::new(mode, root_cert.as_deref())?,
        None if root_cert.is_some() => Tls::new(SslMode::Prefer, root_cert.as_deref())?,
        // A key=value string (or a URL without sslmode): the driver's own setting.
        None => Tls::from_config(&config)?,
    };
    tls.apply(&mut config);
    Ok((config, tls))
}

/// A URL with its TLS parameters taken out.
struct UrlParts<'a> {
    /// The URL without `sslmode` and `sslrootcert`.
    rest: Cow<'a, str>,
    mode: Option<SslMode>,
    root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of `url`, decoded (the last one wins, as in the
/// driver).
fn take_tls_params(url: &str) -> Result<UrlParts<'_>, Error> {
    let unchanged = || UrlParts {
        rest: Cow::Borrowed(url),
        mode: None,
        root_cert: None,
    };
    let Some(after_scheme) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
    else {
        return Ok(unchanged());
    };
    // As the driver reads a URL: the credentials end at the first '@', the query starts at the
    // first '?' after them.
    let start = url.len() - after_scheme.len();
    let host_start = start + after_scheme.find('@').map_or(0, |at| at + 1);
    let Some(q) = url[host_start..].find('?') else {
        return Ok(unchanged());
    };
    let (head, query) = url.split_at(host_start + q);
    let query = &query[1..];
    let mut mode = None;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = Some(percent_decode(value, "sslmode")?.parse::<SslMode>()?),
            "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(value, "sslrootcert")?)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        head.to_owned()
    } else {
        format!("{head}?{}", kept.join("&"))
    };
    Ok(UrlParts {
        rest: Cow::Owned(rest),
        mode,
        root_cert,
    })
}

fn percent_decode(value: &str, field: &str) -> Result<String, Error> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = value
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| {
                    Error::invalid(field, format!("{value:?} has a bad percent escape"))
                })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::invalid(field, format!("{value:?} is not UTF-8 once decoded")))
}

/// The CA certificates of a PEM file.
fn read_roots(path: &Path) -> Result<RootCertStore, Error> {
    let shown = path.display();
    let pem = std::fs::read(path)
        .map_err(|e| Error::invalid("sslrootcert", format!("cannot read {shown}: {e}")))?;
    let mut roots = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.map_err(|e| {
            Error::invalid(
                "sslrootcert",
                format!("{shown}: certificate {} is not valid PEM: {e}", i + 1),
            )
        })?;
        roots.add(cert).map_err(|e| {
            Error::invalid(
                "sslrootcert",
                format!("{shown}: certificate {} is not a usable CA: {e}", i + 1),
            )
        })?;
    }
    if roots.is_empty() {
        return Err(Error::invalid(
            "sslrootcert",
            format!("{shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    Ok(roots)
}

/// What a failed TLS handshake was about, when `err` is one: the driver reports every TLS
/// failure with this exact message and the reason as its source.
pub(crate) fn handshake_failure(err: &tokio_postgres::Error) -> Option<HandshakeFailure> {
    use std::error::Error as _;
    if err.to_string() != "error performing TLS handshake" {
        return None;
    }
    let source = err.source()?;
    // A certificate or protocol refusal comes as a rustls error inside an io::Error; the
    // refusal of a server without TLS is the driver's own. Anything else is the network.
    let io = source.downcast_ref::<std::io::Error>();
    let rustls_error = io
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let hint = match rustls_error {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            " (the server's certificate is not signed by a CA in sslrootcert, or by a public \
             root when sslrootcert is not given)"
        }
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. },
        )) => " (sslmode=verify-full checks the host name: connect by a name in the certificate)",
        None if io.is_none() => " (turn ssl on in the server, or use sslmode=prefer)",
        _ => "",
    };
    Some(HandshakeFailure {
        reason: format!("{source}{hint}"),
        refused: rustls_error.is_some() || io.is_none(),
    })
}

/// A failed TLS handshake.
pub(crate) struct HandshakeFailure {
    /// Why, as rustls or the driver said it.
    pub reason: String,
    /// True when retrying cannot help (a certificate refused, a server without TLS); false
    /// when the network failed during the handshake.
    pub refused: bool,
}

/// The certificate check of every mode but `verify-full` (which is rustls's own): with `roots`,
/// the chain must lead to one of them, the host name unchecked (`verify-ca`, and `prefer` or
/// `require` with a CA file); without, nothing is checked (`prefer`, `require`), as libpq. The
/// handshake signatures are verified either way, so the session is bound to the certificate's
/// key.
#[derive(Debug)]
struct ChainOnly {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn split(url: &str) -> (tokio_postgres::Config, Tls) {
        split_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn invalid(url: &str) -> (String, String) {
        match split_url(url) {
            Err(Error::InvalidInput { field, reason }) => (field, reason),
            other => panic!("{url}: expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn every_mode_parses_and_sets_the_wire_mode() {
        for (mode, wire) in [
            ("disable", WireMode::Disable),
            ("prefer", WireMode::Prefer),
            ("require", WireMode::Require),
            ("verify-ca", WireMode::Require),
            ("verify-full", WireMode::Require),
        ] {
            let (config, tls) = split(&format!("postgres://u@h:5/db?sslmode={mode}"));
            assert_eq!(tls.mode().as_str(), mode);
            assert_eq!(config.get_ssl_mode(), wire, "{mode}");
            assert_eq!(config.get_dbname(), Some("db"));
        }
    }

    #[test]
    fn no_sslmode_is_prefer_as_in_libpq() {
        let (config, tls) = split("postgres://u@h/db");
        assert_eq!(tls.mode(), SslMode::Prefer);
        assert_eq!(config.get_ssl_mode(), WireMode::Prefer);
    }

    #[test]
    fn other_parameters_reach_the_driver() {
        let (config, tls) = split(
            "postgresql://u:p%3Fw@h:7/db?application_name=x&sslmode=verify-full&connect_timeout=3",
        );
        assert_eq!(tls.mode(), SslMode::VerifyFull);
        assert_eq!(config.get_application_name(), Some("x"));
        assert_eq!(
            config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert_eq!(config.get_password(), Some(&b"p?w"[..]));
    }

    #[test]
    fn a_question_mark_in_the_password_is_not_the_query() {
        let (config, tls) = split("postgres://u:a?b@h/db?sslmode=require");
        assert_eq!(config.get_password(), Some(&b"a?b"[..]));
        assert_eq!(tls.mode(), SslMode::Require);
    }

    #[test]
    fn a_key_value_string_keeps_the_drivers_sslmode() {
        let (config, tls) = split("host=h user=u sslmode=require");
        assert_eq!(tls.mode(), SslMode::Require);
        assert_eq!(config.get_ssl_mode(), WireMode::Require);
    }

    #[test]
    fn an_unknown_mode_names_the_setting() {
        let (field, reason) = invalid("postgres://u@h/db?sslmode=verify");
        assert_eq!(field, "sslmode");
        assert!(reason.contains("\"verify\""), "{reason}");
        assert!(reason.contains("verify-full"), "{reason}");
    }

    #[test]
    fn a_missing_root_cert_names_the_setting_and_the_path() {
        let (field, reason) =
            invalid("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        assert_eq!(field, "sslrootcert");
        assert!(reason.contains("/nonexistent/ca.pem"), "{reason}");
    }

    #[test]
    fn a_root_cert_that_is_not_pem_names_the_setting_and_the_path() {
        let path = std::env::temp_dir().join(format!("zart-tls-not-pem-{}", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let url = format!(
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert={}",
            path.display()
        );
        let (field, reason) = invalid(&url);
        let _ = std::fs::remove_file(&path);
        assert_eq!(field, "sslrootcert");
        assert!(reason.contains(&path.display().to_string()), "{reason}");
        assert!(reason.contains("PEM"), "{reason}");
    }

    #[test]
    fn disable_ignores_the_root_cert() {
        let (_, tls) = split("postgres://u@h/db?sslmode=disable&sslrootcert=/nonexistent");
        assert_eq!(tls.mode(), SslMode::Disable);
    }

    #[test]
    fn a_malformed_url_keeps_the_drivers_message() {
        let (field, reason) = invalid("postgres://u@h:notaport/db?sslmode=require");
        assert_eq!(field, "database url");
        assert!(reason.contains("expected postgres://"), "{reason}");
    }
}
