//! The platform this server offers: `name=value` properties given at startup. An action may
//! ask only for properties the server has.

use std::collections::BTreeSet;

use remex_proto::reapi;
use tonic::Status;

/// The server's platform properties.
#[derive(Clone, Debug, Default)]
pub(crate) struct Platform {
    properties: BTreeSet<(String, String)>,
}

impl Platform {
    pub(crate) fn new(properties: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            properties: properties.into_iter().collect(),
        }
    }

    /// Refuses, with `FAILED_PRECONDITION` naming it, the first property the action asks for
    /// that this server lacks.
    pub(crate) fn check(&self, requested: Option<&reapi::Platform>) -> Result<(), Status> {
        let Some(requested) = requested else {
            return Ok(());
        };
        for property in &requested.properties {
            let key = (property.name.clone(), property.value.clone());
            if !self.properties.contains(&key) {
                return Err(Status::failed_precondition(format!(
                    "no worker has platform property `{}={}`; this server offers {}",
                    property.name,
                    property.value,
                    self.describe()
                )));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        if self.properties.is_empty() {
            return "none".to_owned();
        }
        let listed: Vec<String> = self
            .properties
            .iter()
            .map(|(name, value)| format!("`{name}={value}`"))
            .collect();
        listed.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(pairs: &[(&str, &str)]) -> reapi::Platform {
        reapi::Platform {
            properties: pairs
                .iter()
                .map(|(name, value)| reapi::platform::Property {
                    name: name.to_string(),
                    value: value.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn offered_properties_pass_and_others_are_named() {
        let server = Platform::new([("OSFamily".into(), "linux".into())]);
        server
            .check(Some(&platform(&[("OSFamily", "linux")])))
            .expect("offered");
        server.check(None).expect("nothing asked");
        let status = server
            .check(Some(&platform(&[("OSFamily", "linux"), ("gpu", "a100")])))
            .expect_err("not offered");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert!(
            status.message().contains("`gpu=a100`"),
            "{}",
            status.message()
        );
    }
}
