//! The TypeScript bindings in `ui/src/bindings.ts` must be what the Rust types generate today.
#![allow(clippy::unwrap_used)]

#[test]
fn typescript_bindings_match_the_rust_commands_and_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(timebank_app::BINDINGS);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = timebank_app::bindings_text();
    assert!(
        committed == generated,
        "ui/src/bindings.ts is out of date with the Rust commands and types. \
         Regenerate it with: cargo run -p timebank-app --bin export-bindings"
    );
}

#[test]
fn every_registered_command_has_a_permission_and_no_permission_lacks_a_command() {
    let text = timebank_app::bindings_text();
    // Calls look like `__TAURI_INVOKE("name", ...)` or `__TAURI_INVOKE<Type>("name")`.
    let mut exported: Vec<String> = text
        .split("__TAURI_INVOKE")
        .skip(1)
        .filter_map(|rest| rest.split_once("(\"").map(|(_, after)| after))
        .filter_map(|after| after.split('"').next())
        .map(str::to_owned)
        .collect();
    exported.sort();
    exported.dedup();
    let mut named: Vec<String> = timebank_app::command_names::EVERYONE
        .iter()
        .chain(timebank_app::command_names::STAFF)
        .map(|s| s.to_string())
        .collect();
    named.sort();
    assert!(!exported.is_empty(), "no commands found in the bindings");
    assert_eq!(exported, named);
}

#[test]
fn staff_only_commands_are_not_in_the_capability_every_device_grants() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("capabilities");
    let base = std::fs::read_to_string(dir.join("base.json")).unwrap();
    let staff = std::fs::read_to_string(dir.join("staff.json")).unwrap();
    for c in timebank_app::command_names::STAFF {
        let perm = format!("\"allow-{}\"", c.replace('_', "-"));
        assert!(
            !base.contains(&perm),
            "{perm} must not be granted to every device"
        );
        assert!(
            staff.contains(&perm),
            "{perm} missing from the staff capability"
        );
    }
    for c in timebank_app::command_names::EVERYONE {
        let perm = format!("\"allow-{}\"", c.replace('_', "-"));
        assert!(
            base.contains(&perm),
            "{perm} missing from the base capability"
        );
    }
}
