//! The built-in target kinds `local_environment` and `remote_environment`, whose fields include
//! one override for each environment-aware option.

use remex_model::{FieldSpec, FieldType, FieldValue, KindSpec};

use crate::registry::OptionRegistry;

/// An environment that runs processes on this machine.
pub const LOCAL_ENVIRONMENT_KIND: &str = "local_environment";
/// An environment that runs processes on the remote execution server.
pub const REMOTE_ENVIRONMENT_KIND: &str = "remote_environment";

/// The platforms environments name, as Pants names them.
pub const PLATFORMS: [&str; 4] = ["linux_arm64", "linux_x86_64", "macos_arm64", "macos_x86_64"];

/// The fields of the environment kinds other than option overrides.
pub(crate) const OWN_FIELDS: &[&str] = &[
    "compatible_platforms",
    "fallback_environment",
    "platform",
    "extra_platform_properties",
    "cache_binary_discovery",
];

/// Whether targets of `kind` describe environments rather than work to run.
pub fn is_environment_kind(kind: &str) -> bool {
    kind == LOCAL_ENVIRONMENT_KIND || kind == REMOTE_ENVIRONMENT_KIND
}

/// The platform of this machine, such as `linux_x86_64`, named like [`PLATFORMS`].
pub fn host_platform() -> String {
    let os = std::env::consts::OS;
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    };
    format!("{os}_{arch}")
}

/// The two environment kinds, with a field `<scope>_<option>` for each environment-aware
/// option of `registry`. Pass them to BUILD evaluation with the plugins' kinds.
pub fn environment_kinds(registry: &OptionRegistry) -> Vec<KindSpec> {
    let overrides: Vec<FieldSpec> = option_fields(registry);
    let mut local = vec![
        field(
            "compatible_platforms",
            FieldType::TextList,
            Some(FieldValue::TextList(PLATFORMS.map(str::to_owned).to_vec())),
            "Platforms this machine may be for the environment to be used; otherwise its \
             fallback is tried",
        ),
        fallback_field(),
    ];
    local.extend(overrides.iter().cloned());

    let mut remote = vec![
        field(
            "platform",
            FieldType::Text,
            Some(FieldValue::Text("linux_x86_64".into())),
            "The platform of the remote workers, one of `linux_arm64`, `linux_x86_64`, \
             `macos_arm64` or `macos_x86_64`",
        ),
        field(
            "extra_platform_properties",
            FieldType::TextList,
            Some(FieldValue::TextList(Vec::new())),
            "Platform properties (`key=value`) sent with every action, to select workers",
        ),
        fallback_field(),
        field(
            "cache_binary_discovery",
            FieldType::Boolean,
            Some(FieldValue::Boolean(false)),
            "Cache where binaries were found in this environment across runs",
        ),
    ];
    remote.extend(overrides);

    vec![
        KindSpec {
            name: LOCAL_ENVIRONMENT_KIND.into(),
            help: "An environment that runs processes on this machine".into(),
            fields: local,
        },
        KindSpec {
            name: REMOTE_ENVIRONMENT_KIND.into(),
            help: "An environment that runs processes on the remote execution server".into(),
            fields: remote,
        },
    ]
}

fn field(name: &str, ty: FieldType, default: Option<FieldValue>, help: &str) -> FieldSpec {
    FieldSpec {
        name: name.to_owned(),
        ty,
        required: false,
        default,
        help: help.to_owned(),
    }
}

fn fallback_field() -> FieldSpec {
    field(
        "fallback_environment",
        FieldType::Text,
        None,
        "The environment name (or `__local__`) to use when this one cannot be",
    )
}

/// One optional field per environment-aware option, with no default: an unset field means the
/// option's own value.
fn option_fields(registry: &OptionRegistry) -> Vec<FieldSpec> {
    registry
        .environment_aware()
        .filter_map(|spec| {
            let help = format!("Overrides `{}` here: {}", spec.key(), spec.help);
            let ty = spec.ty.field_type()?;
            Some(field(&spec.key().field_name(), ty, None, &help))
        })
        .collect()
}
