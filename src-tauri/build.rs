//! Build script: Tauri's code generation, with tauri.conf.json at the repository root.

fn main() {
    if let Err(e) =
        tauri_build::try_build(tauri_build::Attributes::new().config_path("../tauri.conf.json"))
    {
        // Cargo shows this and stops the build; there is nothing to recover.
        println!("cargo::error={e:#}");
    }
}
