//! `muster tls ca create` and `muster tls cert create`: the files of your own PKI
//! (docs/operations.md §2.4), made by [`muster::transport::pki`]. Existing files are
//! never overwritten; private keys are written with mode 0600.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use muster::transport::pki::{self, PemPair};

/// `muster tls …`.
#[derive(Subcommand)]
pub enum TlsCmd {
    /// Certificate authorities.
    #[command(subcommand)]
    Ca(CaCmd),
    /// Node certificates.
    #[command(subcommand)]
    Cert(CertCmd),
}

/// `muster tls ca …`.
#[derive(Subcommand)]
pub enum CaCmd {
    /// Create a CA: ca.pem (its certificate, for every node's tls_ca) and ca.key (keep
    /// it off the nodes).
    Create(CaCreateArgs),
}

/// `muster tls cert …`.
#[derive(Subcommand)]
pub enum CertCmd {
    /// Issue a node certificate from the CA: NODE.pem (tls_cert) and NODE.key (tls_key).
    Create(CertCreateArgs),
}

#[derive(Args)]
pub struct CaCreateArgs {
    /// Directory to write ca.pem and ca.key in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out_dir: PathBuf,
    /// Days the CA certificate is valid.
    #[arg(long, default_value_t = 3650)]
    days: u32,
    /// The CA's common name.
    #[arg(long, default_value = "muster CA")]
    common_name: String,
}

#[derive(Args)]
pub struct CertCreateArgs {
    /// The node name (`--name` of the agent that will use it).
    #[arg(long)]
    name: String,
    /// The CA certificate.
    #[arg(long, value_name = "FILE", default_value = "ca.pem")]
    ca: PathBuf,
    /// The CA's private key.
    #[arg(long, value_name = "FILE", default_value = "ca.key")]
    ca_key: PathBuf,
    /// Directory to write NODE.pem and NODE.key in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out_dir: PathBuf,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = 825)]
    days: u32,
}

/// Runs a `muster tls` command.
pub fn run(cmd: &TlsCmd) -> ExitCode {
    let outcome = match cmd {
        TlsCmd::Ca(CaCmd::Create(args)) => create_ca(args),
        TlsCmd::Cert(CertCmd::Create(args)) => create_cert(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("muster: {e}");
            ExitCode::FAILURE
        }
    }
}

fn create_ca(args: &CaCreateArgs) -> Result<(), String> {
    let ca = pki::create_ca(&args.common_name, muster::wall_clock::now(), args.days)
        .map_err(|e| e.to_string())?;
    let (cert, key) = write_pair(&args.out_dir, "ca", &ca)?;
    eprintln!(
        "muster: wrote the CA certificate {} and its key {} (mode 0600), valid {} days",
        cert.display(),
        key.display(),
        args.days
    );
    Ok(())
}

fn create_cert(args: &CertCreateArgs) -> Result<(), String> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    if args.name.is_empty() || args.name.contains(['/', '\0']) || args.name.starts_with('.') {
        return Err(format!(
            "{:?} cannot name a file: give the node name as the agent's --name",
            args.name
        ));
    }
    let ca = PemPair {
        cert: read(&args.ca)?,
        key: read(&args.ca_key)?,
    };
    let node = pki::issue_node(&ca, &args.name, muster::wall_clock::now(), args.days)
        .map_err(|e| e.to_string())?;
    let (cert, key) = write_pair(&args.out_dir, &args.name, &node)?;
    eprintln!(
        "muster: wrote {}'s certificate {} and key {} (mode 0600), valid {} days; start it with\n  \
         muster agent --name {} --tls-ca {} --tls-cert {} --tls-key {} ...",
        args.name,
        cert.display(),
        key.display(),
        args.days,
        args.name,
        args.ca.display(),
        cert.display(),
        key.display()
    );
    Ok(())
}

/// Writes `STEM.pem` (0644) and `STEM.key` (0600) in `dir`, neither overwriting a file;
/// answers their paths.
fn write_pair(dir: &Path, stem: &str, pair: &PemPair) -> Result<(PathBuf, PathBuf), String> {
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    for path in [&cert, &key] {
        if path.exists() {
            return Err(format!("{} exists; not overwriting it", path.display()));
        }
    }
    write_new(&key, &pair.key, 0o600)?;
    write_new(&cert, &pair.cert, 0o644)?;
    Ok((cert, key))
}

/// Creates `path` with `mode` and writes `text` to it; an existing file is an error.
pub fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    muster::new_file::create(path, text.as_bytes(), mode)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
