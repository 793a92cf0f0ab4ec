//! Who is asking: a client's principal and its role.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A client as the host authenticated it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// The client's configured name (`owner` for the host's own token).
    pub name: String,
    pub role: Role,
}

impl Principal {
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        Principal {
            name: name.into(),
            role,
        }
    }

    /// The holder of the host's generated access token.
    pub fn owner() -> Self {
        Principal::new("owner", Role::Owner)
    }
}

/// What a principal may do before any policy narrows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, administration included (the host's generated token).
    Owner,
    /// Commands on workers, no administration.
    Operator,
    /// Read only.
    Observer,
}

impl Role {
    /// Every role, in a fixed order (the order of [`Role::index`]).
    pub const ALL: [Role; 3] = [Role::Owner, Role::Operator, Role::Observer];

    /// A dense index (0, 1, 2), for tables keyed by role.
    pub fn index(self) -> usize {
        match self {
            Role::Owner => 0,
            Role::Operator => 1,
            Role::Observer => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Operator => "operator",
            Role::Observer => "observer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
