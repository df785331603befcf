//! What service managers run: the systemd unit `contrib/systemd/gobuildkey-serve.service`
//! and the Kubernetes example of docs/operations.md.
//!
//! The unit is checked by `systemd-analyze verify` (systemd's own parser, which needs no
//! running systemd), and its `ExecStart=` is run as the unit runs it: as a user that is
//! neither root nor the owner of the policy, the master handed over in a credentials
//! folder. The Kubernetes manifests are checked against the Kubernetes schemas, offline, by
//! `kubernetes-validate` from PyPI (which bundles them), in strict mode; and the
//! Deployment's command line is run as its user and group on a read-only volume laid out
//! as the kubelet lays out the projected Secret and ConfigMap. Each check is shown to fail
//! on a broken file. `.ci/run` installs both tools; without them a test is skipped with a
//! message, except under CI, where it fails.

#[cfg(feature = "serve")]
use crate::server::http_get;
use std::fs;
#[cfg(feature = "serve")]
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

#[cfg(feature = "serve")]
use crate::common::{ARM, ARM_KEY, EMPTY_POLICY, MASTER, NOBODY, TestEnv, write_file};

/// The unit, from the repository's root.
const UNIT: &str = "contrib/systemd/gobuildkey-serve.service";
/// Where the unit expects the binary; the checks put the built one there instead.
const UNIT_BINARY: &str = "/usr/local/bin/gobuildkey";
/// The version of `kubernetes-validate` that `.ci/run` installs (pip), and so the schemas
/// it bundles.
const KUBERNETES_VALIDATE: &str = "1.37.0";
/// The Kubernetes version whose schemas the example is checked against (one that
/// `kubernetes-validate` bundles).
const KUBERNETES: &str = "1.33.0";

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn unit_text() -> String {
    fs::read_to_string(repository().join(UNIT)).unwrap()
}

// ---- systemd ----

/// What `systemd-analyze verify` says of a unit with the text `unit`, its binary replaced
/// by the one just built (systemd checks that `ExecStart=` names an executable): `Ok` when
/// it exits 0 and says nothing about the unit, else `Err` with what it said. `None` when
/// `systemd-analyze` is not installed.
fn systemd_verify(unit: &str) -> Option<Result<(), String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gobuildkey-serve.service");
    fs::write(
        &path,
        unit.replace(UNIT_BINARY, env!("CARGO_BIN_EXE_gobuildkey")),
    )
    .unwrap();
    let out = match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .env("SYSTEMD_LOG_COLOR", "0")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    };
    let said = crate::common::all_output(&out);
    // Warnings about this unit name it ("…/gobuildkey-serve.service:53: Unknown key …");
    // anything else is about the machine's own units.
    let about_the_unit: Vec<&str> = said
        .lines()
        .filter(|line| line.contains("gobuildkey-serve.service"))
        .collect();
    if !said.trim().is_empty() {
        eprintln!("systemd-analyze verify said:\n{said}");
    }
    Some(if out.status.success() && about_the_unit.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{said}", out.status))
    })
}

fn no_systemd_analyze() {
    crate::common::missing_tool(
        "systemd-analyze",
        "systemd",
        "to check contrib/systemd/gobuildkey-serve.service",
    );
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = unit_text();
    assert!(
        unit.contains(&format!("ExecStart={UNIT_BINARY} serve")),
        "the unit runs {UNIT_BINARY} serve"
    );
    let Some(verdict) = systemd_verify(&unit) else {
        return no_systemd_analyze();
    };
    if let Err(said) = verdict {
        panic!("systemd-analyze verify {UNIT}: {said}");
    }
}

/// The check above is one that fails: a misspelt directive, a wrong value and a missing
/// binary are each caught (the first two are only warnings, exit 0).
#[test]
fn a_broken_unit_fails_the_check() {
    let unit = unit_text();
    let broken = [
        unit.replace("\nNoNewPrivileges=yes", "\nNoNewPrivilege=yes"),
        unit.replace("\nType=notify", "\nType=notifyy"),
        unit.replace("\nRestartSec=2s", "\nRestartSec=soon"),
        unit.replace(
            &format!("ExecStart={UNIT_BINARY}"),
            "ExecStart=/nowhere/gobuildkey",
        ),
    ];
    for text in broken {
        assert_ne!(text, unit);
        let Some(verdict) = systemd_verify(&text) else {
            return no_systemd_analyze();
        };
        assert!(verdict.is_err(), "a broken unit passed:\n{text}");
    }
}

/// The words of the unit's `ExecStart=` (its continued lines joined), the binary first.
#[cfg(feature = "serve")]
fn exec_start(unit: &str) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    let line = joined
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("an ExecStart= line");
    line.split_whitespace().map(str::to_owned).collect()
}

/// A setting of the unit's `[Service]` section (the first, if repeated).
#[cfg(feature = "serve")]
fn setting<'a>(unit: &'a str, name: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
}

/// Starts `cmd` (a `gobuildkey serve` listening on `addr`) and waits until it answers.
#[cfg(feature = "serve")]
fn start_serving(mut cmd: Command, addr: std::net::SocketAddr) -> crate::server::Server {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let sink = std::sync::Arc::clone(&stderr);
    std::thread::spawn(move || {
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut server = crate::server::Server {
        child,
        addr,
        stderr,
    };
    for _ in 0..3000 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return server;
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!(
                "serve exited ({status}) before listening: {}",
                server.stderr.lock().unwrap()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("serve did not listen: {}", server.stderr.lock().unwrap());
}

/// Runs `program args…` as the unprivileged user [`NOBODY`] (group `gid`, no other group)
/// under `umask`, when the tests run as root; as the current user otherwise.
#[cfg(feature = "serve")]
fn as_unprivileged(gid: u32, umask: &str, program: &Path, args: &[String]) -> Command {
    let mut cmd;
    if rustix::process::geteuid().is_root() {
        cmd = Command::new("setpriv");
        cmd.args([
            format!("--reuid={NOBODY}"),
            format!("--regid={gid}"),
            "--clear-groups".to_owned(),
            "--".to_owned(),
        ]);
        cmd.arg("sh");
    } else {
        cmd = Command::new("sh");
    }
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("-c")
        .arg(format!(r#"umask {umask} && exec "$0" "$@""#))
        .arg(program)
        .args(args);
    cmd
}

/// The unit's command line, run as its service runs it: by a user that is not root
/// (`DynamicUser=`), the master in a credentials folder that only this user can read (as
/// `LoadCredential=` makes it), the policy root's and readable by all, as
/// docs/operations.md says to leave it, and the audit log in a folder of that user's
/// (`LogsDirectory=`), under `UMask=`. It answers `/healthz`, verifies a key and audits it;
/// the policy as `gobuildkey init` leaves it (0600) is refused, as the docs warn.
#[cfg(feature = "serve")]
#[test]
fn the_units_command_line_serves_as_an_unprivileged_user() {
    let unit = unit_text();
    let words = exec_start(&unit);
    assert_eq!(words[..2], [UNIT_BINARY, "serve"]);
    // The credential the command line reads is the one the unit loads.
    let credential = setting(&unit, "LoadCredential").unwrap();
    let (id, source) = credential.split_once(':').unwrap();
    assert_eq!(source, "/etc/gobuildkey/master.key");
    assert!(words.contains(&format!("${{CREDENTIALS_DIRECTORY}}/{id}")));
    assert_eq!(setting(&unit, "LogsDirectory"), Some("gobuildkey"));
    let umask = setting(&unit, "UMask").unwrap();

    let root = tempfile::tempdir().unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let at = |rel: &str| root.path().join(rel);
    let service_user = rustix::process::geteuid().is_root();
    let give = |path: &Path| {
        if service_user {
            std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
        }
    };
    // /run/credentials/gobuildkey-serve.service: the service user's, read-only.
    let credentials = at("credentials");
    write_file(&credentials.join(id), format!("{MASTER}\n"), 0o400);
    give(&credentials.join(id));
    give(&credentials);
    fs::set_permissions(&credentials, fs::Permissions::from_mode(0o500)).unwrap();
    // /etc/gobuildkey: root's (the test's), the policy readable by all.
    let etc = at("etc");
    write_file(&etc.join("gobuildkey.toml"), EMPTY_POLICY, 0o644);
    fs::set_permissions(&etc, fs::Permissions::from_mode(0o755)).unwrap();
    // /var/log/gobuildkey: the service user's, 0700.
    let logs = at("logs");
    fs::create_dir(&logs).unwrap();
    fs::set_permissions(&logs, fs::Permissions::from_mode(0o700)).unwrap();
    give(&logs);

    let port = crate::common::free_port();
    let args: Vec<String> = words[1..]
        .iter()
        .map(|word| {
            word.replace("${CREDENTIALS_DIRECTORY}", credentials.to_str().unwrap())
                .replace("/etc/gobuildkey", etc.to_str().unwrap())
                .replace("/var/log/gobuildkey", logs.to_str().unwrap())
                .replace("127.0.0.1:8790", &format!("127.0.0.1:{port}"))
        })
        .collect();
    assert!(
        args.contains(&format!("127.0.0.1:{port}")),
        "the unit listens on 127.0.0.1:8790: {words:?}"
    );
    let binary = crate::common::unprivileged_binary();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = start_serving(as_unprivileged(NOBODY, umask, binary, &args), addr);
    assert_serves_arm(addr);
    drop(server);
    let audit = logs.join("audit.log");
    assert!(fs::read_to_string(&audit).unwrap().contains(ARM));
    assert_eq!(crate::common::mode(&audit), 0o600);

    // The policy as `gobuildkey init` leaves it, root's and 0600: the service's user
    // cannot read it, and serve does not start.
    if service_user {
        fs::set_permissions(
            etc.join("gobuildkey.toml"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let out = as_unprivileged(NOBODY, umask, binary, &args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("gobuildkey.toml"), "{stderr}");
    }
    // Writable again, so that a user other than root can remove the temporary folder.
    fs::set_permissions(&credentials, fs::Permissions::from_mode(0o700)).unwrap();
}

// ---- Kubernetes ----

/// The YAML blocks of docs/operations.md, as one stream of documents.
fn kubernetes_example() -> String {
    let markdown = fs::read_to_string(repository().join("docs/operations.md")).unwrap();
    let blocks: Vec<String> = crate::doc_examples::blocks(&markdown)
        .into_iter()
        .filter(|block| block.lang == "yaml")
        .map(|block| block.text)
        .collect();
    assert!(!blocks.is_empty(), "docs/operations.md has no yaml block");
    blocks.join("---\n")
}

/// Whether `kubernetes-validate`, at the version `.ci/run` installs, can be run here as
/// `python3 -m kubernetes_validate`; says why not otherwise (failing under CI).
fn have_kubernetes_validate() -> bool {
    let found = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--version"])
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    if found.as_deref() == Some(KUBERNETES_VALIDATE) {
        return true;
    }
    crate::common::missing_tool(
        &format!(
            "kubernetes-validate {KUBERNETES_VALIDATE} (found: {})",
            found.as_deref().unwrap_or("none")
        ),
        &format!("kubernetes-validate=={KUBERNETES_VALIDATE} with pip"),
        "to check the Kubernetes example of docs/operations.md",
    );
    false
}

/// `kubernetes-validate --strict` on `manifests` against [`KUBERNETES`]: `Ok` when every
/// document passed, else `Err` with what it said.
fn kubernetes_validate(manifests: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gobuildkey.yaml");
    fs::write(&path, manifests).unwrap();
    let out = Command::new("python3")
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--kubernetes-version",
        ])
        .arg(KUBERNETES)
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = crate::common::all_output(&out);
    let documents = yaml_to_json(manifests).len();
    let passed = said.matches(" passed for resource ").count();
    if out.status.success() && passed == documents {
        Ok(())
    } else {
        Err(format!(
            "{} ({passed} of {documents} passed)\n{said}",
            out.status
        ))
    }
}

/// The documents of a YAML stream, through PyYAML (which `kubernetes-validate` uses, and
/// so has), as JSON.
fn yaml_to_json(yaml: &str) -> Vec<Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml\n\
             docs = [d for d in yaml.safe_load_all(sys.stdin) if d is not None]\n\
             json.dump(docs, sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(yaml.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "not YAML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The example is valid against the Kubernetes schemas, strictly (a misspelt field is an
/// error); and a wrong type or a misspelt field in it is caught.
#[test]
fn the_kubernetes_example_is_valid_against_the_schemas() {
    if !have_kubernetes_validate() {
        return;
    }
    let example = kubernetes_example();
    if let Err(said) = kubernetes_validate(&example) {
        panic!("the Kubernetes example of docs/operations.md: {said}");
    }
    let broken = [
        example.replace("replicas: 2", "replicas: \"two\""),
        example.replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:"),
        example.replace("defaultMode: 0400", "defaultMode: \"0400\""),
        example.replace("kind: Service\n", "kind: Servce\n"),
    ];
    for text in broken {
        assert_ne!(text, example);
        assert!(
            kubernetes_validate(&text).is_err(),
            "a broken manifest passed:\n{text}"
        );
    }
}

/// The one object of `kind` among `docs`.
fn object<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let mut found = docs.iter().filter(|doc| doc["kind"] == kind);
    let one = found.next().unwrap_or_else(|| panic!("no {kind}"));
    assert!(found.next().is_none(), "two {kind}s");
    one
}

/// What the example says, checked against gobuildkey and the trust rules: the
/// Deployment's command line is gobuildkey's, run as the pod's user and group on a
/// read-only volume of the Secret and the ConfigMap as the kubelet makes it from
/// `defaultMode: 0400` and `fsGroup` (files root's, of that group, mode 0440, reached
/// through `..data`), answers its probes and verifies a key under the ConfigMap's policy.
#[test]
fn the_kubernetes_example_runs_as_the_docs_say() {
    if !have_kubernetes_validate() {
        return;
    }
    let docs = yaml_to_json(&kubernetes_example());
    let deployment = object(&docs, "Deployment");
    let template = &deployment["spec"]["template"];
    let pod = &template["spec"];
    let container = &pod["containers"][0];

    // Who it runs as, and with what.
    let security = &pod["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    let uid = security["runAsUser"].as_u64().unwrap();
    assert_ne!(uid, 0);
    let fs_group = security["fsGroup"].as_u64().unwrap();
    assert_eq!(security["runAsGroup"].as_u64(), Some(fs_group));
    let confined = &container["securityContext"];
    assert_eq!(confined["allowPrivilegeEscalation"], false);
    assert_eq!(confined["readOnlyRootFilesystem"], true);
    assert_eq!(confined["capabilities"]["drop"], serde_json::json!(["ALL"]));

    // The volume: the Secret and the ConfigMap, owner-read only, mounted read-only.
    let volume = &pod["volumes"][0];
    let projected = &volume["projected"];
    assert_eq!(projected["defaultMode"], 0o400);
    let sources = projected["sources"].as_array().unwrap();
    let secret = sources.iter().find_map(|s| s["secret"]["name"].as_str());
    let config_map = sources.iter().find_map(|s| s["configMap"]["name"].as_str());
    let mount = &container["volumeMounts"][0];
    assert_eq!(mount["name"], volume["name"]);
    assert_eq!(mount["readOnly"], true);
    assert!(mount.get("subPath").is_none(), "a subPath is never updated");
    let mount_path = mount["mountPath"].as_str().unwrap();
    let policy_map = object(&docs, "ConfigMap");
    assert_eq!(policy_map["metadata"]["name"].as_str(), config_map);
    assert_eq!(secret, Some("gobuildkey-master"));

    // The probes and the scrape annotations name the port serve listens on.
    let port = &container["ports"][0];
    let container_port = port["containerPort"].as_u64().unwrap();
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], port["name"], "{probe}");
    }
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(
        annotations["prometheus.io/port"],
        container_port.to_string().as_str()
    );
    let service = object(&docs, "Service");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port["name"]);

    // The command line: gobuildkey serve, listening on that port on every address.
    let words: Vec<&str> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(container["args"].as_array().unwrap())
        .map(|word| word.as_str().unwrap())
        .collect();
    assert!(words[0].ends_with("/gobuildkey"), "{words:?}");
    assert_eq!(words[1], "serve");
    let listen = format!("0.0.0.0:{container_port}");
    assert!(words.contains(&listen.as_str()), "{words:?}");
    let policy = policy_map["data"]["gobuildkey.toml"].as_str().unwrap();

    #[cfg(feature = "serve")]
    serve_on_a_kubernetes_volume(&words[1..], mount_path, &listen, policy);
    #[cfg(not(feature = "serve"))]
    let _ = (mount_path, policy);
}

/// Runs `args` (serve's command line from the Deployment, the volume at `mount_path`) as
/// [`NOBODY`], in a private mount namespace where the volume is made by `trust.rs`'s
/// Kubernetes layout with the ConfigMap's `policy`, its files given to the user's group
/// as the kubelet gives them to the pod's `fsGroup` (which is also its `runAsGroup`).
#[cfg(feature = "serve")]
fn serve_on_a_kubernetes_volume(args: &[&str], mount_path: &str, listen: &str, policy: &str) {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: mounting a volume and running as its user need root");
        return;
    }
    let Some(namespace) = crate::trust::mount_namespace() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Kubernetes volume needs a private mount namespace (unshare --mount)"
        );
        eprintln!("skipped: cannot mount a tmpfs in a private mount namespace here");
        return;
    };
    // The pod's group: here nobody's.
    let group = NOBODY;
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let volume = tmp.path().join("gobuildkey");
    fs::create_dir(&volume).unwrap();
    let port = crate::common::free_port();
    let args: Vec<String> = args
        .iter()
        .map(|arg| {
            arg.replace(mount_path, volume.to_str().unwrap())
                .replace(listen, &format!("127.0.0.1:{port}"))
        })
        .collect();
    let mut cmd = crate::trust::in_namespace(namespace, crate::trust::KUBERNETES_VOLUME);
    cmd.current_dir(tmp.path())
        .env("VOLUME_GROUP", group.to_string())
        .arg(&volume)
        .args(["ro", "0440", "0440", MASTER, policy])
        .arg("setpriv")
        .args([
            format!("--reuid={NOBODY}"),
            format!("--regid={group}"),
            "--clear-groups".to_owned(),
            "--".to_owned(),
        ])
        .arg(crate::common::unprivileged_binary())
        .args(&args);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = start_serving(cmd, addr);
    assert_serves_arm(addr);
    // The ConfigMap's policy is the one in force: the right key of the host it revokes
    // is refused, and the audit lines go to the container's log.
    let revoked = "host-openbsd-amd64-70";
    assert!(policy.contains(&format!("[principals.{revoked}]\nrevoked = true")));
    let key = crate::common::stdout_of(
        TestEnv::new()
            .with_master()
            .cmd()
            .args(["-q", "mint", revoked]),
    );
    let headers = [
        ("X-Go-Host-Type", revoked),
        ("X-Go-Builder-Key", key.trim()),
        ("X-Go-Builder-Hostname", "builder-8"),
        ("X-Revdial-Version", "2"),
    ];
    assert_eq!(http_get(addr, "/verify", &headers).0, 403);
    server.wait_for_log(&format!(
        r#""principal":"{revoked}","result":"deny","reason":"revoked""#
    ));
    drop(server);
}

/// The service at `addr` is healthy and answers ARM's right key 200.
#[cfg(feature = "serve")]
fn assert_serves_arm(addr: std::net::SocketAddr) {
    assert_eq!(http_get(addr, "/healthz", &[]).0, 200);
    let headers = [
        ("X-Go-Host-Type", ARM),
        ("X-Go-Builder-Key", ARM_KEY),
        ("X-Go-Builder-Hostname", "builder-7"),
        ("X-Revdial-Version", "2"),
    ];
    assert_eq!(
        http_get(addr, "/verify", &headers),
        (200, "ok\n".to_owned())
    );
}
