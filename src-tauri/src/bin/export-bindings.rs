//! Write the TypeScript bindings of the app's commands and events to `ui/src/bindings.ts`.
fn main() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(timebank_app::BINDINGS);
    std::fs::write(&path, timebank_app::bindings_text()).expect("write ui/src/bindings.ts");
    println!("wrote {}", path.display());
}
