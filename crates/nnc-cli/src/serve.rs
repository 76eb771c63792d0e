//! `nnc serve [FILE] [--port P] [--host H] [--open]`: a local page that shows the
//! diagnostics, derivation, graph and generated Rust of the model being written
//! ([`nnc_serve`]). With FILE the page edits that file.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The `.nn` file to edit (created at the first save if missing); a scratch page
    /// without it.
    file: Option<PathBuf>,
    /// The port (0 for any free one).
    #[arg(long, default_value_t = 7878)]
    port: u16,
    /// The address to listen on: 127.0.0.1 unless you mean to serve other machines
    /// (the page can write FILE). On 127.0.0.1 only requests addressed to it or to
    /// `localhost` are answered; on 0.0.0.0, any.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Open the page in the default browser.
    #[arg(long)]
    open: bool,
}

pub fn run(args: &Args) -> ExitCode {
    if let Some(file) = &args.file
        && file.is_dir()
    {
        eprintln!("error: {} is a directory", file.display());
        return ExitCode::from(2);
    }
    let config = nnc_serve::Config {
        file: args.file.clone(),
        hosts: vec![args.host.to_string()],
        ..nnc_serve::Config::default()
    };
    let open = args.open;
    let served = nnc_serve::run(SocketAddr::new(args.host, args.port), config, |addr| {
        let url = format!("http://{addr}/");
        println!("nnc serve: {url} (Ctrl-C stops)");
        if open {
            open_browser(&url);
        }
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot serve on {}:{}: {e}", args.host, args.port);
            ExitCode::from(1)
        }
    }
}

/// Hands the page to the desktop's opener; says so when there is none.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("note: cannot open a browser ({opener}: {e}); open {url} yourself");
    }
}
