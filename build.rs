// The bundled partner catalogue is embedded with include_dir!, which cargo cannot see through:
// rebuild whenever a file under partners/ changes.
//
// `maestro_build_info` names the compiler and the source revision. The revision is given by
// whoever builds (the Dockerfile passes MAESTRO_BUILD_REVISION), not read from git here: a build
// from a source archive or a container context has no repository to ask.
fn main() {
    println!("cargo:rerun-if-changed=partners");
    println!("cargo:rerun-if-env-changed=MAESTRO_BUILD_REVISION");
    let revision = std::env::var("MAESTRO_BUILD_REVISION")
        .ok()
        .filter(|revision| !revision.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=MAESTRO_BUILD_REVISION={}", revision.trim());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=MAESTRO_RUSTC_VERSION={version}");
}
