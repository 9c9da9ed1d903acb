//! Registries the registry tests start themselves: Debian's
//! `docker-registry` on a free 127.0.0.1 port with its own storage, with
//! htpasswd Basic auth and/or TLS from a CA made here, killed on drop.
#![allow(dead_code)]

pub mod mock;
pub mod proxy;
pub mod seed;

use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a registry may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA and a server certificate for 127.0.0.1 and localhost, signed by it.
pub struct TestCa {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "strata test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        TestCa {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A cert dir holding only `ca.crt`, as `--cert-dir` takes it.
    pub fn cert_dir(&self, parent: &Path) -> PathBuf {
        let dir = parent.join("certs");
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(dir.join("ca.crt"), &self.ca_pem).unwrap();
        dir
    }
}

/// A running `docker-registry`.
pub struct TestRegistry {
    child: Child,
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl TestRegistry {
    /// Start one, with Basic auth for `user`/`password` if given and TLS
    /// with `ca`'s server certificate if given.
    pub fn start(user: Option<(&str, &str)>, ca: Option<&TestCa>) -> TestRegistry {
        let dir = tempfile::Builder::new()
            .prefix("strata-test-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let root = dir.path();
        let mut config = format!(
            "version: 0.1\nlog: {{ level: warn }}\nstorage:\n  filesystem: {{ rootdirectory: {} }}\n  delete: {{ enabled: true }}\nhttp:\n  addr: \"{addr}\"\n",
            root.join("data").display()
        );
        if let Some(ca) = ca {
            fs_err::write(root.join("server.crt"), &ca.cert_pem).unwrap();
            fs_err::write(root.join("server.key"), &ca.key_pem).unwrap();
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                root.join("server.crt").display(),
                root.join("server.key").display()
            ));
        }
        if let Some((u, p)) = user {
            // The cost is the minimum bcrypt allows: the tests check the
            // protocol, not the hash strength.
            let hash = bcrypt::hash_with_result(p, 4)
                .unwrap()
                .format_for_version(bcrypt::Version::TwoY);
            fs_err::write(root.join("htpasswd"), format!("{u}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
                root.join("htpasswd").display()
            ));
        }
        let config_path = root.join("config.yml");
        fs_err::write(&config_path, config).unwrap();
        let log = fs_err::File::create(root.join("log")).unwrap().into_file();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let reg = TestRegistry { child, dir, addr };
        reg.wait_listening();
        reg
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = fs_err::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        panic!("docker-registry did not start on {}: {log}", self.addr);
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        // Already dead is fine: the point is that it does not outlive us.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
