//! The on-disk cache of compiled components: a second load does not compile, a changed
//! component or a damaged entry is compiled (and the entry written again), and a cache
//! that cannot be written never fails a load.
//!
//! Needs the built component: `cargo xtask build-guest` (or `YOI_GUEST_WASM=path`).

use std::path::{Path, PathBuf};

use yoi_core::{
    ComponentCache, Core, GuestLimits, Loaded, WasmCore, WasmEngine, guest_component_path,
};
use yoi_protocol::WorkerSpec;

fn shipped() -> PathBuf {
    guest_component_path().unwrap_or_else(|e| panic!("{e}"))
}

/// The component is usable: it instantiates and serves a command.
fn works(engine: &WasmEngine, loaded: &Loaded) {
    let mut core =
        WasmCore::instantiate(engine, &loaded.component, GuestLimits::default()).unwrap();
    let spec = WorkerSpec {
        name: "w".into(),
        model: "scripted".into(),
        system_prompt: None,
        tools: vec![],
        max_steps: None,
        context_tokens: None,
    };
    core.create_worker(1, spec).unwrap();
    assert_eq!(core.list_workers().unwrap().len(), 1);
}

/// The cache entries in `dir` (temporary files excluded).
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    found.sort();
    found
}

/// `component` with a custom section appended: a different, equally valid component.
fn changed(component: &[u8]) -> Vec<u8> {
    let name = b"yoi-test";
    let data = b"a changed component";
    let size = 1 + name.len() + data.len();
    assert!(size < 0x80, "one-byte LEB128 sizes");
    let mut out = component.to_vec();
    out.push(0); // custom section
    out.push(size as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(data);
    out
}

#[test]
fn the_second_load_comes_from_the_cache() {
    let engine = WasmEngine::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = ComponentCache::new(dir.path().join("cache"));
    let path = shipped();

    let first = cache.load(&engine, &path).unwrap();
    assert!(!first.from_cache, "an empty cache compiles");
    let key = ComponentCache::key(&engine, &std::fs::read(&path).unwrap());
    assert_eq!(entries(cache.dir()), vec![cache.entry_path(&key)]);
    works(&engine, &first);

    let second = cache.load(&engine, &path).unwrap();
    assert!(second.from_cache, "the second load must not compile");
    works(&engine, &second);

    // Another engine with the same configuration (a restarted process) hits too.
    let restarted = WasmEngine::new().unwrap();
    let third = ComponentCache::new(dir.path().join("cache"))
        .load(&restarted, &path)
        .unwrap();
    assert!(third.from_cache);
    works(&restarted, &third);
}

#[test]
fn a_changed_component_has_another_key_and_is_compiled() {
    let engine = WasmEngine::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = ComponentCache::new(dir.path().join("cache"));
    let original = std::fs::read(shipped()).unwrap();
    let modified = changed(&original);
    let modified_path = dir.path().join("changed.wasm");
    std::fs::write(&modified_path, &modified).unwrap();

    assert_ne!(
        ComponentCache::key(&engine, &original),
        ComponentCache::key(&engine, &modified)
    );
    assert_eq!(
        ComponentCache::key(&engine, &original),
        ComponentCache::key(&WasmEngine::new().unwrap(), &original),
        "the key depends on the engine's configuration, not on the engine value"
    );

    assert!(!cache.load(&engine, &shipped()).unwrap().from_cache);
    let loaded = cache.load(&engine, &modified_path).unwrap();
    assert!(
        !loaded.from_cache,
        "a changed component must not hit the old entry"
    );
    works(&engine, &loaded);
    assert_eq!(entries(cache.dir()).len(), 2);
    assert!(cache.load(&engine, &modified_path).unwrap().from_cache);
    assert!(cache.load(&engine, &shipped()).unwrap().from_cache);
}

#[test]
fn a_damaged_entry_is_compiled_again_and_rewritten() {
    let engine = WasmEngine::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = ComponentCache::new(dir.path().join("cache"));
    let path = shipped();
    let key = ComponentCache::key(&engine, &std::fs::read(&path).unwrap());
    let entry = cache.entry_path(&key);
    assert!(!cache.load(&engine, &path).unwrap().from_cache);
    let good = std::fs::read(&entry).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let damages: Vec<(&str, Vec<u8>)> = vec![
        ("one byte flipped in the compiled code", flipped),
        ("truncated", good[..good.len() / 3].to_vec()),
        ("empty", Vec::new()),
        ("not an entry at all", b"hello".to_vec()),
    ];
    for (what, bytes) in damages {
        std::fs::write(&entry, bytes).unwrap();
        let loaded = cache.load(&engine, &path).unwrap();
        assert!(!loaded.from_cache, "{what}: must be compiled again");
        works(&engine, &loaded);
        assert_eq!(
            std::fs::read(&entry).unwrap().len(),
            good.len(),
            "{what}: the entry is rewritten"
        );
        assert!(cache.load(&engine, &path).unwrap().from_cache, "{what}");
    }

    // An entry that is not a readable file is compiled around too.
    std::fs::remove_file(&entry).unwrap();
    std::fs::create_dir(&entry).unwrap();
    let loaded = cache.load(&engine, &path).unwrap();
    assert!(!loaded.from_cache);
    works(&engine, &loaded);
}

#[test]
fn a_cache_that_cannot_be_written_never_fails_a_load() {
    let engine = WasmEngine::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The cache directory is a file: nothing can be read or written there.
    let not_a_dir = dir.path().join("cache");
    std::fs::write(&not_a_dir, b"a file").unwrap();
    let cache = ComponentCache::new(&not_a_dir);
    for _ in 0..2 {
        let loaded = cache.load(&engine, &shipped()).unwrap();
        assert!(!loaded.from_cache);
        works(&engine, &loaded);
    }
}

#[test]
fn a_missing_component_is_a_clear_error_with_a_cache_too() {
    let engine = WasmEngine::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = ComponentCache::new(dir.path());
    let Err(err) = cache.load(&engine, Path::new("/nonexistent/yoi.wasm")) else {
        panic!("loaded a missing file")
    };
    assert_eq!(err.kind, yoi_core::FaultKind::Instantiate);
    assert!(err.message.contains("/nonexistent/yoi.wasm"), "{err}");
}
