//! Local servers for the tests of stores on the network: nginx serving a directory over
//! HTTP (`/vsicurl/`), moto's S3 server (`/vsis3/`) and Azurite's Blob Storage server
//! (`/vsiaz/`). Each listens on 127.0.0.1 on a free port, logs every request to a file the
//! test reads, and is stopped when dropped.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::process::Output;

use super::{cmd, root, s};

/// A server process, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    /// Where the server writes one line per request.
    pub log: PathBuf,
    /// The configuration GDAL needs to reach it (none for plain HTTP).
    pub env: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The request lines logged so far (`GET /path HTTP/1.1`), and the status after each.
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read(&self.log).unwrap_or_default();
        without_colours(&String::from_utf8_lossy(&log))
            .lines()
            .filter_map(|l| {
                let start = l.find('"')? + 1;
                let end = start + l[start..].find('"')?;
                let status = l[end + 1..].split_whitespace().next().unwrap_or("");
                Some(format!("{} {status}", &l[start..end]))
            })
            .collect()
    }

    /// Forgets the requests logged so far.
    pub fn clear_log(&self) {
        std::fs::write(&self.log, b"").unwrap();
    }
}

/// `text` without ANSI colour sequences (`ESC [ ... m`), which some versions of moto's
/// web server put around the request line even in a file.
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Waits until something accepts connections on `port`.
fn wait_for(port: u16, child: &mut Child, what: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start ({status})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 30 s");
}

/// The first of `candidates` that exists, else `name` from PATH.
fn program(name: &str, candidates: &[PathBuf]) -> PathBuf {
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| PathBuf::from(name))
}

/// nginx serving `dir` read-only (with byte ranges) on a free port.
pub fn nginx(dir: &Path) -> Server {
    let tmp = super::tmp();
    let port = free_port();
    let log = tmp.path().join("access.log");
    let conf = tmp.path().join("nginx.conf");
    let t = s(tmp.path());
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes 1;\npid {t}/nginx.pid;\nerror_log {t}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {log};\n  client_body_temp_path {t};\n  proxy_temp_path {t};\n  \
             fastcgi_temp_path {t};\n  uwsgi_temp_path {t};\n  scgi_temp_path {t};\n  \
             server {{ listen 127.0.0.1:{port}; root {root}; }}\n}}\n",
            log = s(&log),
            root = s(dir),
        ),
    )
    .unwrap();
    let bin = program("nginx", &[PathBuf::from("/usr/sbin/nginx")]);
    let mut child = Command::new(&bin)
        .args(["-c", s(&conf), "-p", t, "-e", &format!("{t}/error.log")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}): install Debian's nginx-light",
                bin.display()
            )
        });
    wait_for(port, &mut child, "nginx");
    Server {
        child,
        port,
        log,
        env: Vec::new(),
        _dir: tmp,
    }
}

/// moto's S3 server on a free port, with a bucket `bucket` made.
pub fn moto(bucket: &str) -> Server {
    let tmp = super::tmp();
    let port = free_port();
    let log = tmp.path().join("requests.log");
    let bin = program(
        "moto_server",
        &[root().join("target/moto-venv/bin/moto_server")],
    );
    let mut child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}): make it with `python3 -m venv target/moto-venv && \
                 target/moto-venv/bin/pip install 'moto[server]'` (.ci/run does)",
                bin.display()
            )
        });
    wait_for(port, &mut child, "moto_server");
    let server = Server {
        child,
        port,
        log,
        env: s3_env(port),
        _dir: tmp,
    };
    put(port, &format!("/{bucket}"));
    server
}

/// An unsigned HTTP PUT with an empty body (moto makes a bucket so).
fn put(port: u16, path: &str) {
    use std::io::{Read, Write};
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        c,
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "PUT {path}: {answer}");
}

/// The configuration GDAL needs for `/vsis3/` on the moto server at `port`.
pub fn s3_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_S3_ENDPOINT", format!("127.0.0.1:{port}")),
        ("AWS_HTTPS", "NO".into()),
        ("AWS_VIRTUAL_HOSTING", "FALSE".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_NO_SIGN_REQUEST", "NO".into()),
        ("AWS_CONFIG_FILE", "/nonexistent".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
    ]
}

pub fn gridstore() -> String {
    env!("CARGO_BIN_EXE_gridstore").to_string()
}

/// A program run with the S3 server's configuration.
pub fn run_s3(server: &Server, program: &str, args: &[&str]) -> Output {
    run_on(server, program, args)
}

/// [`run_s3`], which must succeed; its standard output.
pub fn ok_s3(server: &Server, program: &str, args: &[&str]) -> String {
    ok_on(server, program, args)
}

/// tests/python/remote_checks.py with `args`, against the S3 server.
pub fn checks_s3(server: &Server, args: &[&str]) -> String {
    checks_on(server, args)
}

/// A program run with the configuration GDAL needs to reach `server`.
pub fn run_on(server: &Server, program: &str, args: &[&str]) -> Output {
    cmd(program)
        .args(args)
        .envs(server.env.iter().cloned())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// [`run_on`], which must succeed; its standard output.
pub fn ok_on(server: &Server, program: &str, args: &[&str]) -> String {
    let out = run_on(server, program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// tests/python/remote_checks.py with `args`, against `server`.
pub fn checks_on(server: &Server, args: &[&str]) -> String {
    let script = root().join("tests/python/remote_checks.py");
    let mut all = vec![s(&script)];
    all.extend_from_slice(args);
    ok_on(server, "/usr/bin/python3", &all)
}

/// Azurite's account and key: the emulator's well-known development account, published
/// with it (no secret).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's Blob Storage server on a free port, its data in a temporary directory, with a
/// container `container` made.
pub fn azurite(container: &str) -> Server {
    let tmp = super::tmp();
    let port = free_port();
    let log = tmp.path().join("requests.log");
    let bin = program(
        "azurite-blob",
        &[root().join("target/azurite/node_modules/.bin/azurite-blob")],
    );
    let data = tmp.path().join("data");
    let mut child = Command::new(&bin)
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .args(["--location", s(&data), "--skipApiVersionCheck", "--loose"])
        .arg("--disableTelemetry")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}): install it with `npm install --prefix target/azurite \
                 azurite@3.35.0` (Debian's nodejs and npm; scripts/setup.sh and .ci/run do)",
                bin.display()
            )
        });
    wait_for(port, &mut child, "azurite-blob");
    let server = Server {
        child,
        port,
        log,
        env: az_env(port),
        _dir: tmp,
    };
    wait_for_http(port, "azurite-blob");
    let mkdir = "from osgeo import gdal; import sys\n\
                 sys.exit(gdal.Mkdir('/vsiaz/' + sys.argv[1], 0o755))";
    ok_on(&server, "/usr/bin/python3", &["-c", mkdir, container]);
    server
}

/// A Google Cloud Storage emulator (gcp-storage-emulator) on a free port, in memory, with a
/// bucket `bucket` made. It honours no write preconditions: stores on it are only read.
pub fn gcs(bucket: &str) -> Server {
    let tmp = super::tmp();
    let port = free_port();
    let log = tmp.path().join("requests.log");
    let bin = program(
        "gcp-storage-emulator",
        &[root().join("target/gcs-venv/bin/gcp-storage-emulator")],
    );
    let mut child = Command::new(&bin)
        .args(["start", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--in-memory", "--default-bucket", bucket])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}): make it with `python3 -m venv target/gcs-venv && \
                 target/gcs-venv/bin/pip install gcp-storage-emulator==2026.7.19` (.ci/run does)",
                bin.display()
            )
        });
    wait_for(port, &mut child, "gcp-storage-emulator");
    wait_for_http(port, "gcp-storage-emulator");
    Server {
        child,
        port,
        log,
        env: vec![
            ("CPL_GS_ENDPOINT", format!("http://127.0.0.1:{port}/")),
            ("GS_NO_SIGN_REQUEST", "YES".into()),
        ],
        _dir: tmp,
    }
}

/// Waits until the server at `port` answers an HTTP request (some accept connections
/// before they answer).
fn wait_for_http(port: u16, what: &str) {
    use std::io::{Read, Write};
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let answer = TcpStream::connect(("127.0.0.1", port)).and_then(|mut c| {
            write!(
                c,
                "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            )?;
            let mut answer = String::new();
            c.read_to_string(&mut answer)?;
            Ok(answer)
        });
        if answer.is_ok_and(|a| a.starts_with("HTTP/")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not answer HTTP on 127.0.0.1:{port} within 30 s");
}

/// The configuration GDAL needs for `/vsiaz/` on the Azurite server at `port`.
pub fn az_env(port: u16) -> Vec<(&'static str, String)> {
    vec![(
        "AZURE_STORAGE_CONNECTION_STRING",
        format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};\
             AccountKey={AZURITE_KEY};\
             BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
        ),
    )]
}

/// A PostgreSQL server with PostGIS on 127.0.0.1, in a data directory of its own that goes
/// with it: shut down (fast) when dropped.
pub struct Postgres {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown: the server ends its backends and exits.
        // SAFETY: signalling our own child process by its id.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Postgres {
    /// The connection string of the server's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgresql://gridstore@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` with psql; its output (tuples only, unaligned).
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Runs `sql` with psql in database `db`; its output (tuples only, unaligned).
    #[allow(dead_code)] // not every test crate that starts a server uses it
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let url = self.url().replace("/postgres", &format!("/{db}"));
        let out = Command::new("psql")
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", &url])
            .args(["-c", sql])
            .output()
            .expect("psql (Debian's postgresql-client)");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The directory of the newest installed PostgreSQL's programs (Debian keeps them out of PATH).
fn postgres_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.retain(|d| d.join("initdb").exists());
    dirs.sort_by_key(|d| {
        let version = d.parent().and_then(|v| v.file_name());
        version.and_then(|v| v.to_str()?.parse::<u32>().ok())
    });
    dirs.pop().expect(
        "PostgreSQL: install Debian's postgresql and postgresql-15-postgis-3 (.ci/run does)",
    )
}

/// The user and group PostgreSQL runs as: ourselves, or `postgres` when we are root
/// (PostgreSQL refuses to run as root).
fn postgres_ids() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("a `postgres` user (Debian's postgresql package makes it)");
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

/// A program run as the PostgreSQL user.
fn as_postgres(program: PathBuf, ids: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(program);
    if let Some((uid, gid)) = ids {
        c.uid(uid).gid(gid);
    }
    c
}

/// A fresh PostgreSQL server with the PostGIS extension made in its `postgres` database;
/// durability off (a test database).
pub fn postgres() -> Postgres {
    let dir = super::tmp();
    let ids = postgres_ids();
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
    }
    let bin = postgres_bin();
    let data = dir.path().join("data");
    let init = as_postgres(bin.join("initdb"), ids)
        .args([
            "-D",
            s(&data),
            "-U",
            "gridstore",
            "-A",
            "trust",
            "-E",
            "UTF8",
        ])
        .args(["--locale=C", "--no-sync"])
        .output()
        .expect("initdb");
    assert!(
        init.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
    let mut child = as_postgres(bin.join("postgres"), ids)
        .args(["-D", s(&data), "-h", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-k",
            s(dir.path()),
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ])
        .args(["-c", "synchronous_commit=off"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("postgres");
    wait_for(port, &mut child, "postgres");
    let server = Postgres {
        child,
        port,
        _dir: dir,
    };
    // Listening comes before accepting queries: ask until it answers.
    let start = Instant::now();
    loop {
        let ready = Command::new("psql")
            .args(["-X", "-q", "-d", &server.url(), "-c", "SELECT 1"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ready {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "postgres did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.psql("CREATE EXTENSION postgis");
    server
}
