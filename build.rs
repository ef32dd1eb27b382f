// The bundled partner catalogue is embedded with include_dir!, which cargo cannot see through:
// rebuild whenever a file under partners/ changes.
fn main() {
    println!("cargo:rerun-if-changed=partners");
}
