//! 500 seeds of the deterministic simulator (see `ctfs_sync::sim`): every
//! run must converge with no violation. `npm run sim -- --seeds N` runs more.

use ctfs_sync::sim::{run, SimConfig};

#[test]
fn five_hundred_seeds_converge_without_violations() {
    let seeds: Vec<u64> = (1..=500).collect();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = seeds.chunks(250).map(|chunk| s.spawn(move || chunk.iter().map(|&seed| run(SimConfig::new(seed))).collect::<Vec<_>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    assert_eq!(results.len(), 500);
    let failures: Vec<String> =
        results.iter().filter(|r| !r.ok()).map(|r| format!("seed {}: {:?}\n  replay: {}", r.seed, r.violations, r.replay_command())).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // the runs really were adversarial
    let sum = |f: fn(&ctfs_sync::sim::SimResult) -> u64| results.iter().map(f).sum::<u64>();
    assert!(sum(|r| r.crashes) > 100 && sum(|r| r.partitions) > 100 && sum(|r| r.frames_dropped) > 10_000);
    assert!(sum(|r| r.snapshots_installed) > 10, "snapshot joins exercised");
    assert!(sum(|r| r.buffer_evictions) > 0, "buffer overflow exercised");
}
