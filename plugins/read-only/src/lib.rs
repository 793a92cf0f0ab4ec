//! Policy plugin `read-only`: principals of the configured roles may only observe. Every
//! command that changes state (create a worker, input, cancel, stop, and any command
//! this build does not know) is refused with a reason; reads and streams are allowed.
//!
//! ```toml
//! [[policies]]
//! plugin = "read-only"
//! settings = { roles = ["observer"] }
//! ```

use serde::Deserialize;
use yoi_policy::serde_json::{self, Value};
use yoi_policy::{Command, CommandVerdict, Interest, Policy, Principal, Role};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The roles that may only observe.
    roles: Vec<Role>,
}

pub struct ReadOnly {
    roles: Vec<Role>,
}

impl Policy for ReadOnly {
    const NAME: &'static str = "read-only";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(settings: Value) -> Result<Self, String> {
        let Settings { roles } =
            serde_json::from_value(settings).map_err(|e| format!("read-only settings: {e}"))?;
        Ok(ReadOnly { roles })
    }

    fn interest(&self) -> Interest {
        Interest::nothing()
            .for_roles(self.roles.iter().copied())
            .commands()
    }

    fn command(&self, principal: &Principal, command: &Command) -> CommandVerdict {
        if self.roles.contains(&principal.role) && command.changes_state() {
            CommandVerdict::deny(format!(
                "{} clients may only observe: `{}` is not allowed (policy read-only)",
                principal.role,
                command.name()
            ))
        } else {
            CommandVerdict::Allow
        }
    }
}

yoi_policy::export_policy!(ReadOnly);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_roles_may_read_but_not_change_anything() {
        let p = ReadOnly::new(serde_json::json!({"roles": ["observer", "operator"]})).unwrap();
        let observer = Principal::new("o", Role::Observer);
        let stop = Command::Stop {
            runtime: "local".into(),
            worker: "w_1".into(),
        };
        let CommandVerdict::Deny { reason } = p.command(&observer, &stop) else {
            panic!("stop is refused");
        };
        assert!(
            reason.contains("observer clients may only observe"),
            "{reason}"
        );
        assert!(reason.contains("`stop`"), "{reason}");
        let input = Command::Input {
            runtime: "local".into(),
            worker: "w_1".into(),
            input: yoi_policy::protocol::Input {
                text: "hi".into(),
                request_id: None,
            },
        };
        assert!(matches!(
            p.command(&observer, &input),
            CommandVerdict::Deny { .. }
        ));
        assert!(matches!(
            p.command(&observer, &Command::Unknown),
            CommandVerdict::Deny { .. }
        ));
        let read = Command::Transcript {
            runtime: "local".into(),
            worker: "w_1".into(),
        };
        assert_eq!(p.command(&observer, &read), CommandVerdict::Allow);
        assert_eq!(p.command(&Principal::owner(), &stop), CommandVerdict::Allow);
        assert!(ReadOnly::new(serde_json::json!({"roles": "observer"})).is_err());
    }
}
