//! Startup and authentication on an open byte stream.
//!
//! Sends the StartupMessage (with `replication=database` for replication connections), then
//! answers the server's authentication request: trust, cleartext password, MD5 or
//! SCRAM-SHA-256 (postgres-protocol does the cryptography), and collects the parameters the
//! server reports until it is ready for queries. The password is used here and nowhere else
//! in this crate.

use std::collections::HashMap;

use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;

use crate::conninfo::Password;
use crate::error::{DbError, Error, ProtocolError};
use crate::frame::{Authentication, BackendMessage};
use crate::wire::Wire;

/// What the server told us during startup.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pub parameters: HashMap<String, String>,
    pub process_id: i32,
}

/// The startup request: who connects to what, and how.
pub(crate) struct StartupRequest<'a> {
    pub endpoint: &'a str,
    pub user: &'a str,
    pub dbname: &'a str,
    pub password: Option<&'a Password>,
    pub application_name: &'a str,
    pub options: Option<&'a str>,
    pub replication: bool,
}

pub(crate) async fn startup(wire: &mut Wire, req: &StartupRequest<'_>) -> Result<Session, Error> {
    let mut params: Vec<(&str, &str)> = vec![
        ("user", req.user),
        ("database", req.dbname),
        ("application_name", req.application_name),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO"),
        ("extra_float_digits", "3"),
    ];
    if req.replication {
        params.push(("replication", "database"));
    }
    if let Some(options) = req.options {
        params.push(("options", options));
    }
    frontend::startup_message(params.iter().copied(), wire.out())?;
    wire.flush().await?;
    authenticate(wire, req).await?;

    let mut session = Session::default();
    loop {
        match wire.read().await? {
            BackendMessage::ParameterStatus { name, value } => {
                session.parameters.insert(name, value);
            }
            BackendMessage::BackendKeyData { process_id, .. } => session.process_id = process_id,
            BackendMessage::ReadyForQuery { .. } => return Ok(session),
            BackendMessage::ErrorResponse(fields) => return Err(DbError(fields).into()),
            BackendMessage::NegotiateProtocolVersion { .. } => {}
            other => return Err(unexpected(&other, "starting up")),
        }
    }
}

async fn authenticate(wire: &mut Wire, req: &StartupRequest<'_>) -> Result<(), Error> {
    let password = || {
        req.password.ok_or_else(|| Error::PasswordMissing {
            endpoint: req.endpoint.to_owned(),
            user: req.user.to_owned(),
        })
    };
    match read_auth(wire).await? {
        Authentication::Ok => return Ok(()),
        Authentication::CleartextPassword => {
            frontend::password_message(password()?.expose().as_bytes(), wire.out())?;
        }
        Authentication::Md5Password { salt } => {
            let hash = md5_hash(req.user.as_bytes(), password()?.expose().as_bytes(), salt);
            frontend::password_message(hash.as_bytes(), wire.out())?;
        }
        Authentication::Sasl { mechanisms } => {
            if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                return Err(Error::UnsupportedAuth {
                    endpoint: req.endpoint.to_owned(),
                    method: format!("SASL ({})", mechanisms.join(", ")),
                });
            }
            return scram(wire, req, password()?).await;
        }
        Authentication::SaslContinue(_) | Authentication::SaslFinal(_) => {
            return Err(ProtocolError::Invalid {
                tag: b'R',
                what: "SASL continuation before SASL started",
            }
            .into())
        }
        Authentication::Unsupported { code } => {
            return Err(Error::UnsupportedAuth {
                endpoint: req.endpoint.to_owned(),
                method: auth_method_name(code).to_owned(),
            })
        }
    }
    wire.flush().await?;
    match read_auth(wire).await? {
        Authentication::Ok => Ok(()),
        _ => Err(ProtocolError::Invalid {
            tag: b'R',
            what: "expected AuthenticationOk after the password",
        }
        .into()),
    }
}

async fn scram(
    wire: &mut Wire,
    req: &StartupRequest<'_>,
    password: &Password,
) -> Result<(), Error> {
    let scram_err = |source| Error::Scram {
        endpoint: req.endpoint.to_owned(),
        source,
    };
    // Channel binding is not offered: SCRAM-SHA-256 without it is what libpq does with
    // channel_binding=prefer on a server that does not require it.
    let mut scram = ScramSha256::new(password.expose().as_bytes(), ChannelBinding::unsupported());
    frontend::sasl_initial_response(SCRAM_SHA_256, scram.message(), wire.out())?;
    wire.flush().await?;
    let Authentication::SaslContinue(data) = read_auth(wire).await? else {
        return Err(ProtocolError::Invalid {
            tag: b'R',
            what: "expected SASL continue",
        }
        .into());
    };
    scram.update(&data).map_err(scram_err)?;
    frontend::sasl_response(scram.message(), wire.out())?;
    wire.flush().await?;
    let Authentication::SaslFinal(data) = read_auth(wire).await? else {
        return Err(ProtocolError::Invalid {
            tag: b'R',
            what: "expected SASL final",
        }
        .into());
    };
    // Verifies the server's signature: the server proves it knows the password too.
    scram.finish(&data).map_err(scram_err)?;
    match read_auth(wire).await? {
        Authentication::Ok => Ok(()),
        _ => Err(ProtocolError::Invalid {
            tag: b'R',
            what: "expected AuthenticationOk after SASL",
        }
        .into()),
    }
}

async fn read_auth(wire: &mut Wire) -> Result<Authentication, Error> {
    loop {
        match wire.read().await? {
            BackendMessage::Authentication(auth) => return Ok(auth),
            BackendMessage::ErrorResponse(fields) => return Err(DbError(fields).into()),
            BackendMessage::NegotiateProtocolVersion { .. } => {}
            other => return Err(unexpected(&other, "authenticating")),
        }
    }
}

fn auth_method_name(code: i32) -> &'static str {
    match code {
        2 => "Kerberos V5",
        6 => "SCM credentials",
        7 | 8 => "GSSAPI",
        9 => "SSPI",
        _ => "an unknown",
    }
}

/// The error for a message that has no place in the current exchange.
pub(crate) fn unexpected(message: &BackendMessage, during: &'static str) -> Error {
    ProtocolError::Unexpected {
        tag: crate::wire::tag_of(message),
        during,
    }
    .into()
}
