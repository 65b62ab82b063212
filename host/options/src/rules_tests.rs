//! Every way options can be rejected at start-up. Each error names the option, where its value
//! came from (file and line, variable, or flag), and what would be valid.

use crate::test_support::{TestRepo, assert_mentions};

const ADDRESS_FORMS: &str = "`grpc://host:port` or `grpcs://host:port`";
const ADDRESS_TYPE: &str = "`grpc://host:port` (plaintext) or `grpcs://host:port` (TLS)";

#[test]
fn cache_read_or_write_needs_a_store_address() {
    let repo = TestRepo::new("[GLOBAL]\n# a comment\nremote_cache_read = true\n");
    assert_mentions(
        &repo.error(&[], &[]),
        &[
            "remex.toml:3",
            "`[GLOBAL].remote_cache_read` is on",
            "`[GLOBAL].remote_store_address`",
            ADDRESS_FORMS,
        ],
    );

    let repo = TestRepo::new("");
    assert_mentions(
        &repo.error(&[("REMEX_REMOTE_CACHE_WRITE", "true")], &[]),
        &[
            "environment variable `REMEX_REMOTE_CACHE_WRITE`",
            "`[GLOBAL].remote_cache_write`",
        ],
    );
    let fixed = repo.options(
        &[("REMEX_REMOTE_CACHE_WRITE", "true")],
        &["--remote-store-address=grpc://c:9"],
    );
    assert!(fixed.global.remote_cache_write);
}

#[test]
fn execution_needs_both_addresses() {
    let repo = TestRepo::new("[GLOBAL]\nremote_execution = true\n");
    assert_mentions(
        &repo.error(&[], &[]),
        &[
            "remex.toml:2",
            "`[GLOBAL].remote_execution` is on",
            "`[GLOBAL].remote_execution_address` and `[GLOBAL].remote_store_address` are not set",
            ADDRESS_FORMS,
        ],
    );

    let flags = ["--remote-execution", "--remote-store-address=grpc://cas:1"];
    let error = TestRepo::new("").error(&[], &flags);
    assert_mentions(
        &error,
        &[
            "flag `--remote-execution`",
            "`[GLOBAL].remote_execution_address` is not set",
        ],
    );
    assert!(!error.contains("remote_store_address"), "{error}");
}

#[test]
fn a_client_certificate_needs_its_key_and_the_reverse() {
    let repo = TestRepo::new("[GLOBAL]\nremote_client_certs_path = \"client.pem\"\n");
    assert_mentions(
        &repo.error(&[], &[]),
        &[
            "remex.toml:2",
            "`[GLOBAL].remote_client_certs_path` is set",
            "`[GLOBAL].remote_client_key_path` is not",
        ],
    );
    let key = TestRepo::new("").error(&[("REMEX_REMOTE_CLIENT_KEY_PATH", "key.pem")], &[]);
    assert_mentions(
        &key,
        &[
            "`REMEX_REMOTE_CLIENT_KEY_PATH`",
            "`[GLOBAL].remote_client_key_path` is set",
            "`[GLOBAL].remote_client_certs_path` is not",
        ],
    );
}

#[test]
fn headers_must_be_ascii_and_values_are_never_shown() {
    let repo = TestRepo::new("[GLOBAL]\n\nremote_store_headers = { \"x-naïve\" = \"1\" }\n");
    assert_mentions(
        &repo.error(&[], &[]),
        &[
            "remex.toml:3",
            "`[GLOBAL].remote_store_headers`",
            "\"x-naïve\"",
            "printable ASCII",
        ],
    );

    let flag = ["--remote-execution-headers=authorization=Bearer sécret"];
    let error = TestRepo::new("").error(&[], &flag);
    assert_mentions(
        &error,
        &[
            "flag `--remote-execution-headers`",
            "header `authorization`",
            "ASCII",
        ],
    );
    assert!(
        !error.contains("sécret"),
        "a header value was shown: {error}"
    );
}

#[test]
fn addresses_must_be_grpc_or_grpcs_host_and_port() {
    let repo = TestRepo::new("[GLOBAL]\nremote_store_address = \"https://cache:443\"\n");
    assert_mentions(
        &repo.error(&[], &[]),
        &[
            "remex.toml:2",
            "`[GLOBAL].remote_store_address` must be",
            ADDRESS_TYPE,
            "`https://cache:443`",
        ],
    );
    let variable = [("REMEX_REMOTE_EXECUTION_ADDRESS", "exec:8980")];
    assert_mentions(
        &TestRepo::new("").error(&variable, &[]),
        &[
            "`REMEX_REMOTE_EXECUTION_ADDRESS`",
            "`exec:8980`",
            ADDRESS_TYPE,
        ],
    );
    assert_mentions(
        &TestRepo::new("").error(&[], &["--remote-store-address=grpc://cache"]),
        &["flag `--remote-store-address`", "`grpc://cache`"],
    );
}

#[test]
fn an_unknown_key_suggests_the_closest_one() {
    let repo = TestRepo::new(
        "[GLOBAL]\nremote_execution = false\nremote_executon_address = \"grpc://x:1\"\n",
    );
    assert_mentions(
        &repo.error(&[], &[]),
        &[
            "remex.toml:3",
            "unknown option `[GLOBAL].remote_executon_address`",
            "did you mean `remote_execution_address`?",
        ],
    );

    let elsewhere = TestRepo::new("[GLOBAL]\nsearch_path = [\"/bin\"]\n");
    assert_mentions(
        &elsewhere.error(&[], &[]),
        &[
            "remex.toml:2",
            "did you mean `search_path`, in `[python-bootstrap]`?",
        ],
    );

    let scope = TestRepo::new("\n[python_bootstrap]\nnames = []\n");
    assert_mentions(
        &scope.error(&[], &[]),
        &[
            "remex.toml:2",
            "unknown scope `[python_bootstrap]`",
            "did you mean `[python-bootstrap]`?",
        ],
    );

    let flag = TestRepo::new("").error(&[], &["--remote-instanse-name=main"]);
    assert_mentions(
        &flag,
        &[
            "flag `--remote-instanse-name`",
            "did you mean `--remote-instance-name`?",
        ],
    );
    assert!(!flag.contains("=main"), "{flag}");
}

#[test]
fn a_key_outside_any_scope_is_an_error() {
    let repo = TestRepo::new("remote_execution = true\n[GLOBAL]\n");
    assert_mentions(
        &repo.error(&[], &[]),
        &["remex.toml:1", "`remote_execution`", "`[GLOBAL]`"],
    );
}

#[test]
fn a_value_of_the_wrong_type_names_the_type_wanted() {
    let repo = TestRepo::new("[GLOBAL]\nprocess_execution_remote_parallelism = \"64\"\n");
    assert_mentions(
        &repo.error(&[], &[]),
        &[
            "remex.toml:2",
            "`[GLOBAL].process_execution_remote_parallelism` must be a whole number of at least 1",
            "the string `\"64\"`",
        ],
    );
    let too_small = TestRepo::new("[plugins]\n\n\ndeadline_ms = 0\n");
    assert_mentions(
        &too_small.error(&[], &[]),
        &["remex.toml:4", "at least 1", "`0`"],
    );

    let variable = [("REMEX_REMOTE_EXECUTION", "yes")];
    assert_mentions(
        &TestRepo::new("").error(&variable, &[]),
        &[
            "`REMEX_REMOTE_EXECUTION`",
            "must be `true` or `false`, not `yes`",
        ],
    );
    assert_mentions(
        &TestRepo::new("").error(&[], &["--remote-instance-name"]),
        &[
            "flag `--remote-instance-name`",
            "without a value",
            "`--remote-instance-name=VALUE`",
        ],
    );
    let list =
        TestRepo::new("[GLOBAL]\nremote_execution_extra_platform_properties = [\"OSFamily\"]\n");
    assert_mentions(
        &list.error(&[], &[]),
        &["remex.toml:2", "`key=value`", "OSFamily"],
    );
    let choice = TestRepo::new("[GLOBAL]\ncache_content_behavior = \"lazy\"\n");
    assert_mentions(
        &choice.error(&[], &[]),
        &["`fetch`, `validate` or `defer`", "`lazy`"],
    );
}

#[test]
fn invalid_toml_names_its_line() {
    let repo = TestRepo::new("[GLOBAL]\nremote_execution = true\nremote_cache_read = \n");
    assert_mentions(&repo.error(&[], &[]), &["remex.toml:3", "invalid TOML"]);
}

#[test]
fn the_token_file_must_exist_and_not_clash_with_an_authorization_header() {
    let repo = TestRepo::new("[GLOBAL]\nremote_oauth_bearer_token = \"@missing\"\n");
    assert_mentions(
        &repo.error(&[], &[]),
        &[
            "remex.toml:2",
            "`[GLOBAL].remote_oauth_bearer_token`",
            "missing`",
            "cannot be read",
        ],
    );

    let repo = TestRepo::new(
        "[GLOBAL]\nremote_oauth_bearer_token = \"t\"\n\
         remote_store_headers = { Authorization = \"x\" }\n",
    );
    assert_mentions(
        &repo.error(&[], &[]),
        &[
            "remex.toml:2",
            "`[GLOBAL].remote_store_headers` already has an `authorization` header (remex.toml:3)",
        ],
    );
}

#[test]
fn a_protoc_archive_needs_its_digest() {
    let repo = TestRepo::new("[protoc]\narchive = \"third_party/protoc.zip\"\n");
    assert_mentions(
        &repo.error(&[], &[]),
        &["remex.toml:2", "`[protoc].sha256` is not"],
    );
    let short = TestRepo::new("[protoc]\narchive = \"p.zip\"\nsha256 = \"abc\"\n");
    assert_mentions(
        &short.error(&[], &[]),
        &["remex.toml:3", "64 hex digits", "`abc`"],
    );
    let outside = [
        ("REMEX_PROTOC_ARCHIVE", "/opt/protoc.zip"),
        ("REMEX_PROTOC_SHA256", "ab"),
    ];
    assert_mentions(
        &TestRepo::new("").error(&outside, &[]),
        &[
            "`REMEX_PROTOC_ARCHIVE`",
            "relative to the repository root",
            "`/opt/protoc.zip`",
        ],
    );
}

#[test]
fn environment_names_must_map_plain_names_to_addresses() {
    let repo = TestRepo::new("[environments-preview.names]\nlinux = \"envs/linux\"\n");
    assert_mentions(
        &repo.error(&[], &[]),
        &[
            "`[environments-preview].names`",
            "`envs/linux`",
            "`//envs:linux`",
        ],
    );
    let local = TestRepo::new("[environments-preview]\nnames = { __local__ = \"//:x\" }\n");
    assert_mentions(&local.error(&[], &[]), &["remex.toml:2", "`__local__`"]);
}
