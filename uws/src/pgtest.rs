//! A private, throw-away PostgreSQL cluster for tests: `initdb` and `pg_ctl` from Debian's
//! `postgresql` package (or `$VOSTOK_PG_BINDIR`) in a temporary folder, trust authentication
//! on 127.0.0.1 and a free port, run as the `postgres` user when the tests run as root.
//! Dropping it stops the server and removes the folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running private cluster.
pub struct Cluster {
    dir: PathBuf,
    bindir: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn bindir() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("VOSTOK_PG_BINDIR") {
        candidates.push(PathBuf::from(d));
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .collect();
        versions.sort();
        versions.reverse();
        candidates.extend(versions);
    }
    candidates
        .into_iter()
        .find(|d| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|t| d.join(t).is_file())
        })
        .ok_or_else(|| {
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) in $VOSTOK_PG_BINDIR or \
             /usr/lib/postgresql/*/bin: scripts/install-test-deps.sh installs them"
                .to_string()
        })
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

impl Cluster {
    /// Creates and starts a cluster.
    pub fn start() -> Result<Cluster, String> {
        let bindir = bindir()?;
        let as_postgres = output(Command::new("id").arg("-u"))? == "0";
        let dir = std::env::temp_dir().join(format!("vostok-pgtest-{}", crate::new_job_id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        if as_postgres {
            // initdb and postgres refuse to run as root.
            output(Command::new("chown").arg("postgres:").arg(&dir))?;
        }
        let mut cluster = Cluster {
            dir,
            bindir,
            port: free_port()?,
            as_postgres,
        };
        let data = cluster.dir.join("data");
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "--no-sync".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
            ],
        )?;
        if let Err(e) = cluster.pg_start() {
            cluster.port = 0; // nothing to stop
            return Err(e);
        }
        Ok(cluster)
    }

    /// Starts the server of the cluster (again).
    pub fn pg_start(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=40",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        let started = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-o".as_ref(),
                opts.as_ref(),
                "start".as_ref(),
            ],
        );
        started.map(|_| ()).map_err(|e| {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{e}\n{tail}")
        })
    }

    /// Stops the server of the cluster (its clients' connections are ended; `fast`, as the
    /// cluster runs without `fsync` and synchronous commits), keeping its data:
    /// [`Cluster::pg_start`] starts it again.
    pub fn pg_stop(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )
        .map(|_| ())
    }

    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Result<String, String> {
        let exe = self.bindir.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(Path::new("/"));
        output(&mut cmd)
    }

    /// A new, empty database in the cluster, by URL.
    pub fn database(&self, name: &str) -> Result<String, String> {
        let createdb = self.bindir.join("createdb");
        output(
            Command::new(createdb)
                .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(self.port.to_string())
                .arg(name),
        )?;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.port != 0 {
            let data = self.dir.join("data");
            let _ = self.run(
                "pg_ctl",
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-m".as_ref(),
                    "immediate".as_ref(),
                    "-w".as_ref(),
                    "stop".as_ref(),
                ],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
