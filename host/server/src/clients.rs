//! Principals: the owner (the host's generated token) and the `[[clients]]` of the
//! config, each a name, a role and a token read from a file or the environment.
//!
//! ```toml
//! [[clients]]
//! name = "ci"
//! role = "observer"                 # owner | operator | observer
//! token_file = "/etc/yoi/ci.token"  # or: token_env = "YOI_CI_TOKEN"
//! ```
//!
//! Tokens are read at start-up (a missing file or variable, a token shorter than
//! [`yoi_serving::MIN_TOKEN_LEN`], or one token given to two clients stops the start
//! with a message naming the client, never the token) and checked by the one
//! [`Authenticator`] of the host, in constant time.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use yoi_policy::{Principal, Role};
use yoi_serving::{AccessToken, Authenticator};

/// One `[[clients]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub name: String,
    pub role: Role,
    pub token: TokenSource,
}

/// Where a client's token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A file holding the token (one word).
    File(PathBuf),
    /// An environment variable holding the token.
    Env(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: String,
    role: Role,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
}

impl<'de> Deserialize<'de> for ClientConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = RawClient::deserialize(d)?;
        if !is_client_name(&raw.name) {
            return Err(D::Error::custom(format!(
                "client name {:?}: use 1-64 of `a-z A-Z 0-9 _ - .`",
                raw.name
            )));
        }
        if raw.name == Principal::owner().name {
            return Err(D::Error::custom(
                "client name `owner` is the host's own token's; choose another",
            ));
        }
        let token = match (raw.token_file, raw.token_env) {
            (Some(file), None) => TokenSource::File(file),
            (None, Some(var)) => TokenSource::Env(var),
            _ => {
                return Err(D::Error::custom(format!(
                    "client `{}`: give exactly one of `token_file` and `token_env`",
                    raw.name
                )));
            }
        };
        Ok(ClientConfig {
            name: raw.name,
            role: raw.role,
            token,
        })
    }
}

fn is_client_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

pub(crate) fn unique_clients<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<ClientConfig>, D::Error> {
    let clients = Vec::<ClientConfig>::deserialize(d)?;
    let mut seen = BTreeSet::new();
    for c in &clients {
        if !seen.insert(c.name.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "client name `{}` is used twice",
                c.name
            )));
        }
    }
    Ok(clients)
}

impl ClientConfig {
    /// The client's token, read now. The error names the client and where its token
    /// should be, never the token.
    pub fn read_token(&self) -> Result<AccessToken, String> {
        let name = &self.name;
        match &self.token {
            TokenSource::File(path) => AccessToken::read(path).map_err(|e| {
                format!(
                    "client `{name}`: cannot read its token file {}: {e}",
                    path.display()
                )
            }),
            TokenSource::Env(var) => {
                let value = std::env::var(var).map_err(|_| {
                    format!("client `{name}`: the environment variable {var} is not set")
                })?;
                AccessToken::from_secret(value.trim())
                    .map_err(|e| format!("client `{name}`: the token in {var}: {e}"))
            }
        }
    }

    pub fn principal(&self) -> Principal {
        Principal::new(self.name.clone(), self.role)
    }
}

/// The host's authenticator: its own token is the owner, each client's its principal.
pub fn authenticator(
    own: AccessToken,
    clients: &[ClientConfig],
) -> Result<Authenticator<Principal>, String> {
    let mut auth = Authenticator::with_identity(
        own,
        Principal::owner(),
        "in the file host.token in the host's data directory (or the one your operator gave you)",
    );
    for client in clients {
        auth.accept(client.read_token()?, client.principal())
            .map_err(|e| format!("client `{}`: {e}", client.name))?;
    }
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Clients {
        #[serde(deserialize_with = "unique_clients")]
        clients: Vec<ClientConfig>,
    }

    fn parse(text: &str) -> Result<Vec<ClientConfig>, String> {
        toml::from_str::<Clients>(text)
            .map(|c| c.clients)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn clients_parse_and_bad_ones_are_named() {
        let clients = parse(
            "[[clients]]\nname = \"ci\"\nrole = \"observer\"\ntoken_file = \"/t\"\n\
             [[clients]]\nname = \"bot\"\nrole = \"operator\"\ntoken_env = \"BOT\"\n",
        )
        .unwrap();
        assert_eq!(clients[0].token, TokenSource::File("/t".into()));
        assert_eq!(
            clients[1].principal(),
            Principal::new("bot", Role::Operator)
        );
        let both = parse(
            "[[clients]]\nname = \"ci\"\nrole = \"observer\"\ntoken_file = \"/t\"\ntoken_env = \"X\"\n",
        )
        .unwrap_err();
        assert!(both.contains("exactly one"), "{both}");
        let role =
            parse("[[clients]]\nname = \"ci\"\nrole = \"admin\"\ntoken_env = \"X\"\n").unwrap_err();
        assert!(role.contains("admin") && role.contains("line 3"), "{role}");
        let owner = parse("[[clients]]\nname = \"owner\"\nrole = \"owner\"\ntoken_env = \"X\"\n")
            .unwrap_err();
        assert!(owner.contains("choose another"), "{owner}");
        let twice = parse(
            "[[clients]]\nname = \"a\"\nrole = \"owner\"\ntoken_env = \"X\"\n\
             [[clients]]\nname = \"a\"\nrole = \"observer\"\ntoken_env = \"Y\"\n",
        )
        .unwrap_err();
        assert!(twice.contains("used twice"), "{twice}");
    }

    #[test]
    fn tokens_are_read_and_never_repeated_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ci.token");
        std::fs::write(&file, "ci-token-0123456789\n").unwrap();
        let ci = ClientConfig {
            name: "ci".into(),
            role: Role::Observer,
            token: TokenSource::File(file.clone()),
        };
        let own = AccessToken::from_secret("own-token-0123456789").unwrap();
        let auth = authenticator(own.clone(), std::slice::from_ref(&ci)).unwrap();
        assert_eq!(auth.token(), &own);

        std::fs::write(&file, "short").unwrap();
        let weak = authenticator(own.clone(), std::slice::from_ref(&ci)).unwrap_err();
        assert!(
            weak.contains("client `ci`") && !weak.contains("short"),
            "{weak}"
        );

        std::fs::write(&file, "own-token-0123456789").unwrap();
        let shared = authenticator(own.clone(), std::slice::from_ref(&ci)).unwrap_err();
        assert!(
            shared.contains("already") && !shared.contains("own-token"),
            "{shared}"
        );

        let missing = ClientConfig {
            token: TokenSource::Env("YOI_TEST_CLIENT_TOKEN_THAT_IS_NOT_SET".into()),
            ..ci
        };
        let e = authenticator(own, &[missing]).unwrap_err();
        assert!(e.contains("is not set"), "{e}");
    }
}
