//! The dashboard's calls to the master's admin API (the same gRPC service
//! and login tokens as the `shaddock` CLI: `framework/cli/proto/admin.proto`).

use std::time::Duration;

use shaddock::tonic::metadata::MetadataValue;
use shaddock::tonic::transport::Endpoint;
use shaddock::tonic::{Code, Request, Status};
use shaddock_cli::master::auth::{PASSWORD_HEADER, TOKEN_HEADER, USER_HEADER};
use shaddock_cli::master::proto;
use shaddock_cli::master::proto::admin_client::AdminClient;

/// One call to the master, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call failed, as the dashboard shows it.
#[derive(Debug)]
pub enum MasterError {
    /// Log in again (wrong password, expired token).
    Unauthenticated(String),
    /// The master is not reachable or failed.
    Unavailable(String),
    /// The request was refused as malformed.
    Invalid(String),
}

impl MasterError {
    fn from_status(status: Status) -> Self {
        let msg = status.message().to_string();
        match status.code() {
            Code::Unauthenticated | Code::PermissionDenied => MasterError::Unauthenticated(msg),
            Code::InvalidArgument => MasterError::Invalid(msg),
            _ => MasterError::Unavailable(format!("the master answered: {msg}")),
        }
    }
}

/// Where the master's admin API is (`host:port`).
#[derive(Clone, Debug)]
pub struct Master {
    pub addr: String,
}

impl Master {
    async fn client(
        &self,
    ) -> Result<AdminClient<shaddock::tonic::transport::Channel>, MasterError> {
        let endpoint = Endpoint::from_shared(format!("http://{}", self.addr))
            .map_err(|e| MasterError::Unavailable(format!("master address {}: {e}", self.addr)))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(CALL_TIMEOUT);
        let channel = endpoint.connect().await.map_err(|e| {
            MasterError::Unavailable(format!("cannot reach the master at {}: {e}", self.addr))
        })?;
        Ok(AdminClient::new(channel))
    }

    fn with<T>(msg: T, pairs: &[(&'static str, &str)]) -> Result<Request<T>, MasterError> {
        let mut req = Request::new(msg);
        for (key, value) in pairs {
            let value = MetadataValue::try_from(*value).map_err(|_| {
                MasterError::Invalid(format!("{key} holds characters a header cannot carry"))
            })?;
            req.metadata_mut().insert(*key, value);
        }
        Ok(req)
    }

    /// `Login`: a token and its lifetime in seconds.
    pub async fn login(&self, user: &str, password: &str) -> Result<(String, u64), MasterError> {
        let req = Self::with(
            proto::LoginRequest {},
            &[(USER_HEADER, user), (PASSWORD_HEADER, password)],
        )?;
        let resp = self
            .client()
            .await?
            .login(req)
            .await
            .map_err(MasterError::from_status)?
            .into_inner();
        Ok((resp.token, resp.expires_in_secs))
    }

    pub async fn list(&self, token: &str) -> Result<proto::ListResponse, MasterError> {
        let req = Self::with(
            proto::ListRequest { local_only: false },
            &[(TOKEN_HEADER, token)],
        )?;
        Ok(self
            .client()
            .await?
            .list(req)
            .await
            .map_err(MasterError::from_status)?
            .into_inner())
    }

    pub async fn act(
        &self,
        token: &str,
        act: proto::ActRequest,
    ) -> Result<proto::ActResponse, MasterError> {
        let req = Self::with(act, &[(TOKEN_HEADER, token)])?;
        Ok(self
            .client()
            .await?
            .act(req)
            .await
            .map_err(MasterError::from_status)?
            .into_inner())
    }
}
