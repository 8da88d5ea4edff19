//! Who may connect: anyone on an endpoint without a token (loopback only,
//! as the agent refuses to listen further without one), else whoever
//! proves knowledge of the token as their password, by SCRAM-SHA-256 (the
//! token never crosses the network). Any user name is accepted.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::ClientInfo;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{SCRAM_ITERATIONS, ScramAuth, gen_salted_password};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

/// The token, salted and hashed once for SCRAM.
#[derive(Debug, Clone)]
pub(crate) struct Authenticator {
    password: Arc<Password>,
}

impl Authenticator {
    pub(crate) fn new(token: &str) -> Self {
        let salt: [u8; 16] = rand_salt();
        let salted = gen_salted_password(token, &salt, SCRAM_ITERATIONS);
        Self {
            password: Arc::new(Password::new(Some(salt.to_vec()), salted)),
        }
    }
}

/// A salt from the kernel's random source (the process's stack address as
/// a last resort: the salt only has to differ between servers).
fn rand_salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut salt));
    if read.is_err() {
        let fallback = (&salt as *const _ as usize as u128) ^ u128::from(std::process::id());
        salt = fallback.to_le_bytes();
    }
    salt
}

#[async_trait]
impl AuthSource for Authenticator {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        Ok(self.password.as_ref().clone())
    }
}

/// The parameters reported at startup: those of pgwire, but read-only.
fn server_parameters() -> DefaultServerParameterProvider {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.default_transaction_read_only = true;
    parameters.is_superuser = false;
    parameters
}

/// One connection's startup: open, or SCRAM with the token.
pub(crate) enum Startup {
    Open(OpenStartup),
    Token(Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
}

impl Startup {
    pub(crate) fn new(authenticator: Option<&Authenticator>) -> Self {
        match authenticator {
            None => Startup::Open(OpenStartup),
            Some(authenticator) => {
                let scram = ScramAuth::new(Arc::new(authenticator.clone()));
                Startup::Token(Box::new(
                    SASLAuthStartupHandler::new(Arc::new(server_parameters())).with_scram(scram),
                ))
            }
        }
    }
}

pub(crate) struct OpenStartup;

impl NoopStartupHandler for OpenStartup {}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Open(open) => open.on_startup(client, message).await,
            Startup::Token(scram) => scram.on_startup(client, message).await,
        }
    }
}
