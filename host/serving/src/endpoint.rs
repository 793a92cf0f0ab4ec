//! [`Endpoint`]: what a server sets up before it serves: its private data directory, its
//! access token, and its listening socket.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::net::TcpListener;

use crate::token::{AccessToken, create_private_dir};

/// A bound server socket and the token its clients present.
pub struct Endpoint {
    pub listener: TcpListener,
    pub addr: SocketAddr,
    pub token: AccessToken,
    pub token_file: PathBuf,
    /// This start wrote the token file.
    pub token_created: bool,
}

impl Endpoint {
    /// Creates `data_dir` (mode 0700 where it is created), reads or creates the token at
    /// `token_file` (mode 0600), and binds `bind`. Errors say which of these failed.
    pub async fn open(data_dir: &Path, token_file: PathBuf, bind: SocketAddr) -> io::Result<Self> {
        let context =
            |what: String| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
        create_private_dir(data_dir).map_err(context(format!(
            "creating the data directory {}",
            data_dir.display()
        )))?;
        let (token, token_created) = AccessToken::load_or_create(&token_file).map_err(context(
            format!("access token file {}", token_file.display()),
        ))?;
        let listener = TcpListener::bind(bind)
            .await
            .map_err(context(format!("cannot listen on {bind}")))?;
        let addr = listener.local_addr()?;
        Ok(Endpoint {
            listener,
            addr,
            token,
            token_file,
            token_created,
        })
    }
}
