//! Loading `config/servers.json`, `master.json` and `dictionary.json`: the
//! repository's real files, order, every validation error (the message names
//! file, server and field) and environment overrides.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use shaddock::config::{
    ConfigError, EnvOverrides, MasterConfig, ServerInfo, Topology, env_from_args_or_var,
    load_dictionary,
};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shaddock-config-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn write(&self, name: &str, text: &str) -> &Self {
        std::fs::write(self.0.join(name), text).unwrap();
        self
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn repo_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

fn ids(t: &Topology) -> Vec<&str> {
    t.servers.iter().map(|s| s.id.as_str()).collect()
}

/// Loads `doc` as servers.json from a temp dir (no overrides).
fn load_doc(doc: serde_json::Value) -> (TempDir, Result<Topology, ConfigError>) {
    let dir = TempDir::new();
    dir.write("servers.json", &doc.to_string());
    let result = Topology::load_with_overrides(dir.path(), "development", &EnvOverrides::none());
    (dir, result)
}

/// The error message names the file, the server and the field.
fn assert_names(err: &ConfigError, file: &str, server: &str, field: &str) {
    let msg = err.to_string();
    assert!(msg.contains(file), "names the file {file}: {msg}");
    assert!(msg.contains(server), "names the server {server}: {msg}");
    assert!(
        msg.contains(&format!("`{field}`")),
        "names the field {field}: {msg}"
    );
}

fn dev(types: serde_json::Value) -> serde_json::Value {
    json!({ "development": types })
}

#[test]
fn repo_servers_json_loads_for_both_environments_in_file_order() {
    for env in ["development", "production"] {
        let t = Topology::load_with_overrides(&repo_config(), env, &EnvOverrides::none())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.env, env);
        assert_eq!(
            ids(&t),
            [
                "gate-server-1",
                "connector-server-1",
                "connector-server-2",
                "chat-server-1",
                "chat-server-2"
            ]
        );
        assert_eq!(t.server_types(), ["gate", "connector", "chat"]);
        t.validate_types(&["gate", "connector", "chat"]).unwrap();

        let gate = t.server("gate-server-1").unwrap();
        assert_eq!(
            gate,
            &ServerInfo {
                id: "gate-server-1".into(),
                server_type: "gate".into(),
                host: "127.0.0.1".into(),
                port: None,
                client_port: Some(3014),
                frontend: true,
                max_connections: None,
                auto_restart: None,
                args: vec![],
                // Metrics and health checks: on in development only.
                metrics_port: (env == "development").then_some(9101),
                ..Default::default()
            }
        );
        let connectors = t.servers_of_type("connector");
        assert_eq!(
            connectors
                .iter()
                .map(|s| (s.port, s.client_port, s.frontend))
                .collect::<Vec<_>>(),
            [
                (Some(4050), Some(3050), true),
                (Some(4051), Some(3051), true)
            ]
        );
        let chats = t.servers_of_type("chat");
        assert_eq!(
            chats.iter().map(|s| s.port).collect::<Vec<_>>(),
            [Some(6050), Some(6051)]
        );
        assert!(chats.iter().all(|s| !s.frontend && s.client_port.is_none()));
        assert_eq!(t.frontends().len(), 3);

        let master =
            MasterConfig::load_with_overrides(&repo_config(), env, &EnvOverrides::none()).unwrap();
        assert_eq!(
            master,
            MasterConfig {
                id: "master-server-1".into(),
                host: "127.0.0.1".into(),
                port: 3005
            }
        );
    }
    // The process-environment entry points work on the real files too.
    assert!(Topology::load(&repo_config(), "development").is_ok());
    assert!(MasterConfig::load(&repo_config(), "development").is_ok());
    assert_eq!(
        load_dictionary(&repo_config()).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn file_order_is_kept_and_to_servers_json_round_trips() {
    // Types and ids deliberately out of alphabetical order.
    let text = r#"{"development": {
        "zeta": [{"id": "z-2", "host": "127.0.0.1", "port": 7002},
                 {"id": "z-1", "host": "127.0.0.1", "port": 7001}],
        "alpha": [{"id": "a-9", "host": "127.0.0.1", "port": 7009, "clientPort": 7109, "frontend": true,
                   "max-connections": 5, "auto-restart": true, "args": ["--x", "1"]}],
        "mid": [{"id": "m-3", "host": "10.0.0.1", "port": 7001},
                {"id": "m-1", "host": "127.0.0.1", "port": 7011}]
    }}"#;
    let t = Topology::from_json_str(text, "development", "inline.json").unwrap();
    assert_eq!(ids(&t), ["z-2", "z-1", "a-9", "m-3", "m-1"]);
    assert_eq!(t.server_types(), ["zeta", "alpha", "mid"]);
    assert_eq!(
        t.servers_of_type("zeta")
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["z-2", "z-1"]
    );
    let a = t.server("a-9").unwrap();
    assert_eq!(a.max_connections, Some(5));
    assert_eq!(a.auto_restart, Some(true));
    assert_eq!(a.args, ["--x", "1"]);
    assert!(t.server("nope").is_none());
    assert!(t.servers_of_type("nope").is_empty());

    let doc = t.to_servers_json();
    assert_eq!(
        doc["development"]["alpha"][0],
        json!({"id": "a-9", "host": "127.0.0.1", "port": 7009, "clientPort": 7109,
               "frontend": true, "max-connections": 5, "auto-restart": true, "args": ["--x", "1"]})
    );
    assert_eq!(
        doc["development"]["zeta"][0],
        json!({"id": "z-2", "host": "127.0.0.1", "port": 7002})
    );
    let back = Topology::from_json_str(&doc.to_string(), "development", "generated").unwrap();
    assert_eq!(back, t);
    let keys: Vec<&String> = doc["development"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["zeta", "alpha", "mid"]);
}

#[test]
fn pomelo_spellings_are_accepted() {
    // Pomelo configs write booleans as strings and `args` as one string.
    let (_dir, t) = load_doc(dev(json!({"connector": [
        {"id": "c-1", "host": "127.0.0.1", "port": 4050, "clientPort": 3050,
         "frontend": "true", "auto-restart": "false", "args": "--a  --b", "clientHost": "example.org"}
    ]})));
    let t = t.unwrap();
    let c = &t.servers[0];
    assert!(c.frontend);
    assert_eq!(c.auto_restart, Some(false));
    assert_eq!(c.args, ["--a", "--b"]);
}

#[test]
fn unknown_environment_is_refused_with_the_available_ones() {
    let dir = TempDir::new();
    dir.write("servers.json", &dev(json!({})).to_string());
    let err =
        Topology::load_with_overrides(dir.path(), "staging", &EnvOverrides::none()).unwrap_err();
    assert!(matches!(err, ConfigError::UnknownEnvironment { .. }));
    let msg = err.to_string();
    assert!(msg.contains(&dir.file("servers.json")), "{msg}");
    assert!(
        msg.contains("`staging`") && msg.contains("`development`"),
        "{msg}"
    );
    assert!(msg.contains("--env"), "says what to do: {msg}");

    dir.write(
        "master.json",
        r#"{"production": {"id": "m", "host": "127.0.0.1", "port": 3005}}"#,
    );
    let err = MasterConfig::load_with_overrides(dir.path(), "development", &EnvOverrides::none())
        .unwrap_err();
    assert!(err.to_string().contains(&dir.file("master.json")), "{err}");
    assert!(matches!(err, ConfigError::UnknownEnvironment { .. }));
}

#[test]
fn missing_file_and_broken_json_name_the_file() {
    let dir = TempDir::new();
    let err = Topology::load_with_overrides(dir.path(), "development", &EnvOverrides::none())
        .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains(&dir.file("servers.json")), "{err}");

    dir.write("servers.json", "{\"development\": {");
    let err = Topology::load_with_overrides(dir.path(), "development", &EnvOverrides::none())
        .unwrap_err();
    assert!(matches!(err, ConfigError::Json { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.file("servers.json")) && msg.contains("line"),
        "{msg}"
    );

    dir.write("servers.json", "[1, 2]");
    let err = Topology::load_with_overrides(dir.path(), "development", &EnvOverrides::none())
        .unwrap_err();
    assert!(err.to_string().contains("keyed by environment"), "{err}");
}

#[test]
fn duplicate_id_is_refused() {
    let (dir, r) = load_doc(dev(json!({
        "connector": [{"id": "same", "host": "127.0.0.1", "port": 4050, "clientPort": 3050, "frontend": true}],
        "chat": [{"id": "same", "host": "127.0.0.1", "port": 6050}]
    })));
    let err = r.unwrap_err();
    assert_names(&err, &dir.file("servers.json"), "server \"same\"", "id");
    assert!(err.to_string().contains("duplicate id"), "{err}");
}

#[test]
fn duplicate_ports_on_one_host_are_refused() {
    // port vs port.
    let (dir, r) = load_doc(dev(json!({"chat": [
        {"id": "chat-1", "host": "127.0.0.1", "port": 6050},
        {"id": "chat-2", "host": "127.0.0.1", "port": 6050}
    ]})));
    let err = r.unwrap_err();
    assert_names(&err, &dir.file("servers.json"), "server \"chat-2\"", "port");
    assert!(
        err.to_string().contains("\"chat-1\""),
        "names the other server: {err}"
    );

    // clientPort of one server vs port of another.
    let (dir, r) = load_doc(dev(json!({
        "chat": [{"id": "chat-1", "host": "127.0.0.1", "port": 3050}],
        "connector": [{"id": "conn-1", "host": "127.0.0.1", "port": 4050, "clientPort": 3050, "frontend": true}]
    })));
    assert_names(
        &r.unwrap_err(),
        &dir.file("servers.json"),
        "server \"conn-1\"",
        "clientPort",
    );

    // One server's port equal to its own clientPort.
    let (dir, r) = load_doc(dev(json!({"connector": [
        {"id": "conn-1", "host": "127.0.0.1", "port": 3050, "clientPort": 3050, "frontend": true}
    ]})));
    assert_names(
        &r.unwrap_err(),
        &dir.file("servers.json"),
        "server \"conn-1\"",
        "clientPort",
    );

    // The same port on different hosts is fine.
    let (_dir, r) = load_doc(dev(json!({"chat": [
        {"id": "chat-1", "host": "10.0.0.1", "port": 6050},
        {"id": "chat-2", "host": "10.0.0.2", "port": 6050}
    ]})));
    assert_eq!(r.unwrap().servers.len(), 2);
}

#[test]
fn frontend_without_client_port_is_refused() {
    let (dir, r) = load_doc(dev(json!({"gate": [
        {"id": "gate-server-1", "host": "127.0.0.1", "frontend": true}
    ]})));
    let err = r.unwrap_err();
    assert_names(
        &err,
        &dir.file("servers.json"),
        "server \"gate-server-1\"",
        "clientPort",
    );
    assert!(
        err.to_string().contains("add e.g."),
        "says what to do: {err}"
    );
}

#[test]
fn wrong_value_types_are_refused() {
    let cases = [
        ("port", json!("abc"), "expected a port number"),
        ("port", json!(70000), "expected a port number"),
        ("port", json!(0), "expected a port number"),
        ("port", json!(-1), "expected a port number"),
        ("port", json!(4050.5), "expected a port number"),
        ("clientPort", json!(true), "expected a port number"),
        ("frontend", json!("yes"), "expected true or false"),
        ("auto-restart", json!(1), "expected true or false"),
        ("max-connections", json!("many"), "positive whole number"),
        ("max-connections", json!(0), "positive whole number"),
        ("args", json!(5), "list of strings"),
        ("args", json!(["--a", 1]), "list of strings"),
        ("host", json!(127), "expected a string"),
    ];
    for (field, value, problem) in cases {
        let mut server = json!({"id": "connector-server-1", "host": "127.0.0.1", "port": 4050,
                                "clientPort": 3050, "frontend": true});
        server[field] = value.clone();
        let (dir, r) = load_doc(dev(json!({ "connector": [server] })));
        let err = r.unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { .. }),
            "{field}={value}: {err:?}"
        );
        assert_names(
            &err,
            &dir.file("servers.json"),
            "server \"connector-server-1\"",
            field,
        );
        assert!(err.to_string().contains(problem), "{field}={value}: {err}");
    }
}

#[test]
fn missing_or_bad_id_and_host_are_refused() {
    // No id: the server is named by its position in the type's list.
    let (dir, r) = load_doc(dev(json!({"chat": [
        {"id": "chat-server-1", "host": "127.0.0.1", "port": 6050},
        {"host": "127.0.0.1", "port": 6051}
    ]})));
    let err = r.unwrap_err();
    assert_names(
        &err,
        &dir.file("servers.json"),
        "server #2 of type \"chat\"",
        "id",
    );
    assert!(err.to_string().contains("missing"), "{err}");

    let (dir, r) = load_doc(dev(
        json!({"chat": [{"id": 7, "host": "127.0.0.1", "port": 6050}]}),
    ));
    assert_names(
        &r.unwrap_err(),
        &dir.file("servers.json"),
        "server #1 of type \"chat\"",
        "id",
    );

    let (dir, r) = load_doc(dev(
        json!({"chat": [{"id": "", "host": "127.0.0.1", "port": 6050}]}),
    ));
    assert_names(
        &r.unwrap_err(),
        &dir.file("servers.json"),
        "server #1 of type \"chat\"",
        "id",
    );

    let (dir, r) = load_doc(dev(
        json!({"chat": [{"id": "chat-server-1", "port": 6050}]}),
    ));
    let err = r.unwrap_err();
    assert_names(
        &err,
        &dir.file("servers.json"),
        "server \"chat-server-1\"",
        "host",
    );
    assert!(err.to_string().contains("missing"), "{err}");

    let (dir, r) = load_doc(dev(
        json!({"chat": [{"id": "chat-server-1", "host": " ", "port": 6050}]}),
    ));
    assert_names(
        &r.unwrap_err(),
        &dir.file("servers.json"),
        "server \"chat-server-1\"",
        "host",
    );
}

#[test]
fn malformed_structure_is_refused() {
    let (dir, r) = load_doc(dev(json!({"chat": {"id": "chat-server-1"}})));
    assert_names(
        &r.unwrap_err(),
        &dir.file("servers.json"),
        "server type \"chat\"",
        "chat",
    );

    let (dir, r) = load_doc(dev(json!({"chat": ["chat-server-1"]})));
    assert_names(
        &r.unwrap_err(),
        &dir.file("servers.json"),
        "server #1 of type \"chat\"",
        "(entry)",
    );

    let (dir, r) = load_doc(dev(json!([])));
    assert_names(
        &r.unwrap_err(),
        &dir.file("servers.json"),
        "(all servers)",
        "development",
    );
}

#[test]
fn unknown_server_type_is_refused() {
    let (_dir, r) = load_doc(dev(json!({
        "connector": [{"id": "connector-server-1", "host": "127.0.0.1", "port": 4050, "clientPort": 3050, "frontend": true}],
        "chta": [{"id": "chta-server-1", "host": "127.0.0.1", "port": 6050}]
    })));
    let t = r.unwrap();
    t.validate_types(&["connector", "chta"]).unwrap();
    let err = t
        .validate_types(&["gate", "connector", "chat"])
        .unwrap_err();
    assert!(matches!(err, ConfigError::UnknownServerType { .. }));
    assert_names(
        &err,
        "servers.json",
        "server \"chta-server-1\"",
        "serverType",
    );
    let msg = err.to_string();
    assert!(msg.contains("`chta`") && msg.contains("`chat`"), "{msg}");
}

#[test]
fn environment_overrides_replace_fields() {
    let overrides = EnvOverrides::from_vars([
        ("SHADDOCK_SERVERS__CONNECTOR_SERVER_1__CLIENTPORT", "4000"),
        ("SHADDOCK_SERVERS__connector_server_2__MAX_CONNECTIONS", "7"),
        ("SHADDOCK_SERVERS__CONNECTOR_SERVER_2__AUTO-RESTART", "true"),
        ("SHADDOCK_SERVERS__CHAT_SERVER_1__HOST", "127.0.0.2"),
        ("SHADDOCK_SERVERS__CHAT_SERVER_2__ARGS", "[\"--verbose\"]"),
        ("SHADDOCK_MASTER__PORT", "3999"),
        ("SHADDOCK_ENV", "production"),
        // Other SHADDOCK_* variables are not ours to parse.
        ("SHADDOCK_LOG[0", "debug"),
        ("SHADDOCK_LOG__FILTER", "info"),
        ("UNRELATED", "1"),
    ])
    .unwrap();
    let t = Topology::load_with_overrides(&repo_config(), "development", &overrides).unwrap();
    let c1 = t.server("connector-server-1").unwrap();
    assert_eq!(c1.client_port, Some(4000));
    assert_eq!(c1.port, Some(4050), "other fields untouched");
    let c2 = t.server("connector-server-2").unwrap();
    assert_eq!(c2.max_connections, Some(7));
    assert_eq!(c2.auto_restart, Some(true));
    assert_eq!(t.server("chat-server-1").unwrap().host, "127.0.0.2");
    assert_eq!(t.server("chat-server-2").unwrap().args, ["--verbose"]);
    assert_eq!(t.server("gate-server-1").unwrap().client_port, Some(3014));
    // Order is unaffected by overrides.
    assert_eq!(
        ids(&t),
        [
            "gate-server-1",
            "connector-server-1",
            "connector-server-2",
            "chat-server-1",
            "chat-server-2"
        ]
    );
    let m = MasterConfig::load_with_overrides(&repo_config(), "development", &overrides).unwrap();
    assert_eq!(m.port, 3999);
    assert_eq!(m.host, "127.0.0.1");
    assert!(!overrides.is_empty());
    assert!(
        EnvOverrides::from_vars([("PATH", "/bin")])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_environment_overrides_are_refused() {
    // A bad value is validated like a file value and names the variable.
    let overrides =
        EnvOverrides::from_vars([("SHADDOCK_SERVERS__CHAT_SERVER_1__PORT", "abc")]).unwrap();
    let err = Topology::load_with_overrides(&repo_config(), "development", &overrides).unwrap_err();
    assert_names(&err, "servers.json", "server \"chat-server-1\"", "port");
    assert!(
        err.to_string()
            .contains("SHADDOCK_SERVERS__CHAT_SERVER_1__PORT"),
        "{err}"
    );

    // An override that makes two servers share a port.
    let overrides =
        EnvOverrides::from_vars([("SHADDOCK_SERVERS__CHAT_SERVER_2__PORT", "6050")]).unwrap();
    let err = Topology::load_with_overrides(&repo_config(), "development", &overrides).unwrap_err();
    assert_names(&err, "servers.json", "server \"chat-server-2\"", "port");

    // A variable naming no server.
    let overrides =
        EnvOverrides::from_vars([("SHADDOCK_SERVERS__CAHT_SERVER_1__PORT", "6060")]).unwrap();
    let err = Topology::load_with_overrides(&repo_config(), "development", &overrides).unwrap_err();
    assert!(matches!(err, ConfigError::Override { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("SHADDOCK_SERVERS__CAHT_SERVER_1__PORT")
            && msg.contains("servers.json")
            && msg.contains("chat-server-1"),
        "{msg}"
    );

    // An unknown field.
    let err =
        EnvOverrides::from_vars([("SHADDOCK_SERVERS__CHAT_SERVER_1__PROT", "6060")]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("SHADDOCK_SERVERS__CHAT_SERVER_1__PROT") && msg.contains("clientPort"),
        "{msg}"
    );

    // A server without a field.
    let err = EnvOverrides::from_vars([("SHADDOCK_SERVERS__CHAT_SERVER_1", "6060")]).unwrap_err();
    assert!(err.to_string().contains("<FIELD>"), "{err}");

    // A bad master value names the master, the field and the variable.
    let overrides = EnvOverrides::from_vars([("SHADDOCK_MASTER__PORT", "x")]).unwrap();
    let err =
        MasterConfig::load_with_overrides(&repo_config(), "development", &overrides).unwrap_err();
    assert_names(&err, "master.json", "master", "port");
    assert!(err.to_string().contains("SHADDOCK_MASTER__PORT"), "{err}");
}

#[test]
fn master_json_errors_name_file_and_field() {
    let dir = TempDir::new();
    dir.write(
        "master.json",
        r#"{"development": {"id": "master-server-1", "host": "127.0.0.1"}}"#,
    );
    let err = MasterConfig::load_with_overrides(dir.path(), "development", &EnvOverrides::none())
        .unwrap_err();
    assert_names(&err, &dir.file("master.json"), "master", "port");

    dir.write(
        "master.json",
        r#"{"development": {"host": "127.0.0.1", "port": 3005}}"#,
    );
    let err = MasterConfig::load_with_overrides(dir.path(), "development", &EnvOverrides::none())
        .unwrap_err();
    assert_names(&err, &dir.file("master.json"), "master", "id");

    let m = MasterConfig {
        id: "m-1".into(),
        host: "127.0.0.1".into(),
        port: 4005,
    };
    dir.write("master.json", &m.to_master_json("test").to_string());
    assert_eq!(
        MasterConfig::load_with_overrides(dir.path(), "test", &EnvOverrides::none()).unwrap(),
        m
    );
}

#[test]
fn dictionary_json_is_optional_and_lenient_like_pomelo() {
    let dir = TempDir::new();
    assert!(
        load_dictionary(dir.path()).unwrap().is_empty(),
        "missing file"
    );
    dir.write("dictionary.json", r#"["onChat", "onAdd", 5, "onLeave"]"#);
    assert_eq!(
        load_dictionary(dir.path()).unwrap(),
        ["onChat", "onAdd", "onLeave"]
    );
    dir.write("dictionary.json", "{}");
    assert!(load_dictionary(dir.path()).unwrap().is_empty(), "non-array");
    dir.write("dictionary.json", "[\"onChat\"");
    let err = load_dictionary(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains(&dir.file("dictionary.json")),
        "{err}"
    );
}

#[test]
fn environment_is_chosen_by_flag_then_variable_then_default() {
    assert_eq!(
        env_from_args_or_var(Some("production".into())),
        "production"
    );
    let expected = std::env::var("SHADDOCK_ENV")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "development".into());
    assert_eq!(env_from_args_or_var(None), expected);
    assert_eq!(env_from_args_or_var(Some(String::new())), expected);
}

#[test]
fn generated_configs_load_back() {
    // The CLI and tests write configs with to_servers_json: free ports, any env.
    let t = Topology {
        env: "test".into(),
        servers: vec![
            ServerInfo {
                id: "connector-server-1".into(),
                server_type: "connector".into(),
                host: "127.0.0.1".into(),
                port: Some(41001),
                client_port: Some(41002),
                frontend: true,
                max_connections: Some(100),
                auto_restart: None,
                args: vec![],
                client_host: None,
                bind_host: None,
                client_bind_host: None,
                metrics_port: None,
            },
            ServerInfo {
                id: "chat-server-1".into(),
                server_type: "chat".into(),
                host: "127.0.0.1".into(),
                port: Some(41003),
                client_port: None,
                frontend: false,
                max_connections: None,
                auto_restart: Some(true),
                args: vec!["--x".into()],
                client_host: None,
                bind_host: None,
                client_bind_host: None,
                metrics_port: None,
            },
        ],
    };
    let dir = TempDir::new();
    dir.write("servers.json", &t.to_servers_json().to_string());
    let back = Topology::load_with_overrides(dir.path(), "test", &EnvOverrides::none()).unwrap();
    assert_eq!(back, t);
}

/// Runs `process_environment_child` in a child process of this test binary
/// with real environment variables set: the process-environment entry points
/// (`Topology::load`, `MasterConfig::load`, `env_from_args_or_var(None)`) are
/// exercised without mutating this process's environment, which other tests
/// read in parallel.
#[test]
fn process_environment_overrides_apply() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "process_environment_child", "--nocapture"])
        .env("SHADDOCK_CONFIG_TEST_CHILD", "1")
        .env("SHADDOCK_ENV", "production")
        .env("SHADDOCK_SERVERS__CONNECTOR_SERVER_1__CLIENTPORT", "4000")
        .env("SHADDOCK_SERVERS__Chat_Server_2__Max_Connections", "9")
        .env("SHADDOCK_MASTER__HOST", "127.0.0.9")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "the child test ran: {stdout}");
}

#[test]
fn process_environment_child() {
    if std::env::var_os("SHADDOCK_CONFIG_TEST_CHILD").is_none() {
        return; // only meaningful inside process_environment_overrides_apply
    }
    let env = env_from_args_or_var(None);
    assert_eq!(env, "production");
    let t = Topology::load(&repo_config(), &env).unwrap();
    assert_eq!(t.env, "production");
    assert_eq!(
        t.server("connector-server-1").unwrap().client_port,
        Some(4000)
    );
    assert_eq!(t.server("chat-server-2").unwrap().max_connections, Some(9));
    assert_eq!(
        MasterConfig::load(&repo_config(), &env).unwrap().host,
        "127.0.0.9"
    );
    assert_eq!(
        env_from_args_or_var(Some("development".into())),
        "development"
    );
}

/// `host` is what servers dial; `clientHost` what the gate hands out;
/// `bindHost` / `clientBindHost` what the listeners bind (defaults in
/// docs/deployment.md).
#[test]
fn addresses_separate_binding_dialling_and_what_clients_get() {
    let (_dir, t) = load_doc(dev(json!({
        "connector": [
            {"id": "c-plain", "host": "127.0.0.1", "port": 4050, "clientPort": 3050, "frontend": true},
            {"id": "c-public", "host": "10.0.0.3", "clientHost": "play.example.com",
             "port": 4051, "clientPort": 3051, "frontend": true},
            {"id": "c-container", "host": "connector-3", "bindHost": "0.0.0.0",
             "clientHost": "play.example.com", "clientBindHost": "0.0.0.0",
             "port": 4052, "clientPort": 3052, "frontend": true}
        ]
    })));
    let t = t.unwrap();
    let plain = t.server("c-plain").unwrap();
    assert_eq!(
        (
            plain.client_host(),
            plain.rpc_bind_host(),
            plain.client_bind_host()
        ),
        ("127.0.0.1", "127.0.0.1", "127.0.0.1")
    );
    let public = t.server("c-public").unwrap();
    assert_eq!(
        (
            public.client_host(),
            public.rpc_bind_host(),
            public.client_bind_host()
        ),
        ("play.example.com", "10.0.0.3", "0.0.0.0")
    );
    let container = t.server("c-container").unwrap();
    assert_eq!(
        (
            container.host.as_str(),
            container.rpc_bind_host(),
            container.client_bind_host()
        ),
        ("connector-3", "0.0.0.0", "0.0.0.0")
    );
    // The registration others read carries them (serde names as in the file).
    let json = serde_json::to_value(container).unwrap();
    assert_eq!(json["clientHost"], "play.example.com");
    assert_eq!(json["bindHost"], "0.0.0.0");
}
