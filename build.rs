//! Release builds for x86_64 Linux link the functions a supervisor runs, the
//! ones it runs at idle first, side by side (`build/symbol-order.txt`, made
//! by `bench/order-symbols`). The kernel keeps an executable's pages resident
//! in 64 KiB windows around each page that runs; an idle supervisor runs
//! about 400 KiB of code, which, spread over the whole text section, kept
//! 2.5 MiB of the binary resident. Side by side, they fill a few windows.
//!
//! Only rust-lld (rustc's own linker on this target since 1.90) takes the
//! ordering file, so any other build, a linker of the user's own, or
//! `FPCTL_NO_SYMBOL_ORDER=1` links as usual. Names in the file that no longer
//! exist are skipped.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let order = root.join("build").join("symbol-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=FPCTL_NO_SYMBOL_ORDER");
    if orders_symbols(&order) {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

fn orders_symbols(order: &std::path::Path) -> bool {
    let var = |name: &str| env::var(name).unwrap_or_default();
    var("PROFILE") == "release"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && env::var_os("FPCTL_NO_SYMBOL_ORDER").is_none()
        // A linker chosen by the user may not take the flag.
        && env::var_os("RUSTC_LINKER").is_none()
        && !var("CARGO_ENCODED_RUSTFLAGS").contains("link")
        && order.is_file()
        && !order.to_string_lossy().contains(',')
        && rustc_minor().is_some_and(|minor| minor >= 90)
}

/// The minor version of the rustc that builds us (`rustc 1.95.0 (…)`).
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).arg("-V").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}
