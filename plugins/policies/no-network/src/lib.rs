//! Denies actions whose platform properties ask for network access, such as
//! `dockerNetwork=standard` or `network=host`. A network property set to `off` or `none` is
//! allowed, and so is an action with no network property: executors run without network
//! unless asked.

#![no_std]

extern crate alloc;

use alloc::format;

use remex_policy_sdk::{ActionDescription, Decision, PlatformProperty, Policy};

/// Property names that control network access, compared after lowercasing and dropping `-` and
/// `_`: Buildbarn's and BuildGrid's `dockerNetwork`, and the generic forms other executors use.
const NETWORK_PROPERTIES: &[&str] = &["dockernetwork", "network", "networkaccess", "networkmode"];

/// Values of those properties that turn the network off, compared case-insensitively.
const NO_NETWORK_VALUES: &[&str] = &["off", "none", "disabled", "false"];

struct NoNetwork;

impl Policy for NoNetwork {
    fn evaluate(action: ActionDescription) -> Decision {
        match action.platform.iter().find(|p| asks_for_network(p)) {
            Some(property) => Decision::Deny(format!(
                "platform property `{}={}` asks for network access; actions run without \
                 network, so set it to `off` or remove it",
                property.name, property.value
            )),
            None => Decision::Allow,
        }
    }
}

fn asks_for_network(property: &PlatformProperty) -> bool {
    let name = property.name.chars().filter(|c| !matches!(c, '-' | '_'));
    let is_network_property = NETWORK_PROPERTIES.iter().any(|known| {
        known
            .chars()
            .eq(name.clone().map(|c| c.to_ascii_lowercase()))
    });
    is_network_property
        && !NO_NETWORK_VALUES
            .iter()
            .any(|off| off.eq_ignore_ascii_case(property.value.trim()))
}

remex_policy_sdk::export_policy!(NoNetwork, "no-network");
