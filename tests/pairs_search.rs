//! `collbench pairs` searching on 8 real MPI ranks of one machine (--by rank): the search code of
//! src/pairs/search/ measured by the engine through pairs/rounds.rs, the ranks agreeing on every round.
//! A rank made slow with COLLBENCH_TEST_DELAY is the bad "host"; docs/FLEET.md records the same
//! across the lab's hosts. One run at a time: 16 or 24 ranks on 2 cores make healthy pairs tens of
//! times slower now and then, and a host slow in two rounds by chance takes 14 quiet rounds to clear.

mod common;

use common::{collbench, mpirun_json, schema_errors, schema_validator};
use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// 8 ranks oversubscribed on a small machine: pairs differ by several times between rounds, so a pair
/// is slow only below a fifth of the median; the delayed rank (200 ms an exchange) stays far below it even
/// when busy cores make every healthy pair tens of times slower (20 ms did not, once, in gpu-check).
const PAIRS: &str = "pairs --by rank --backend mpi -b 64K -n 2 -w 1 --slow-threshold 80 -T 60";

#[test]
fn the_search_names_a_slow_rank_in_fewer_rounds_than_the_circle_method() {
    let _turn = turn();
    let run = mpirun_json(8, PAIRS, &[("COLLBENCH_TEST_DELAY", "5:200000")]);
    run.assert_success();
    let doc = run.doc();
    let errors = schema_errors(&schema_validator("pairs"), &doc);
    assert!(errors.is_empty(), "schema errors: {errors:#?}");
    assert_eq!(doc["method"], "search", "{}", run.stdout);
    let search = &doc["search"];
    assert_eq!(search["sure"], true, "{}", run.stdout);
    let rounds = search["rounds"].as_u64().unwrap();
    // Named within the circle method's first repeat of 7 rounds (it takes 3 repeats, 21 rounds, to
    // name anyone). Clearing the others takes more rounds where busy cores make healthy pairs slow
    // now and then (24 in all seen at load 16), so the total is not what is compared.
    let named_after = search["first_named"][0]["round"].as_u64().unwrap();
    assert!(
        named_after <= 7,
        "named after {named_after}\n{}",
        run.stdout
    );
    let bad: Vec<&str> = doc["verdict"]["bad_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(bad.len(), 1, "{}", run.stdout);
    assert!(bad[0].starts_with("5 ("), "{bad:?}\n{}", run.stdout);
    assert!(doc["verdict"]["bad_links"].as_array().unwrap().is_empty());
    assert!(
        doc["verdict"]["bad_hosts"][0]["slow_with"]
            .as_array()
            .is_some_and(|w| w.len() >= 2),
        "{}",
        doc["verdict"]
    );
    // Every round disjoint pairs, checked, and no rank with more partners than rounds.
    let samples = doc["samples"].as_array().unwrap();
    let mut seated: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); rounds as usize];
    let mut partners: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); 8];
    for s in samples {
        let (a, b, r) = (
            s["a"].as_u64().unwrap(),
            s["b"].as_u64().unwrap(),
            s["round"].as_u64().unwrap() as usize,
        );
        assert!(seated[r].insert(a) && seated[r].insert(b), "{s}");
        partners[a as usize].insert(b);
        partners[b as usize].insert(a);
        assert_eq!(s["wrong"], 0, "{s}");
    }
    assert!(partners.iter().all(|p| p.len() as u64 <= rounds));
    assert_eq!(
        search["most_partners"].as_u64(),
        partners.iter().map(|p| p.len() as u64).max()
    );
    assert!(run.stdout.contains("# Search"), "{}", run.stdout);
    assert!(run.stdout.contains("bad host 5 ("), "{}", run.stdout);
    assert!(
        run.stdout.contains("the circle method's 21 rounds"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_search_stopped_by_max_rounds_says_it_is_not_sure_and_full_measures_every_pair() {
    let _turn = turn();
    let short = mpirun_json(
        8,
        &format!("{PAIRS} --max-rounds 2"),
        &[("COLLBENCH_TEST_DELAY", "5:200000")],
    );
    short.assert_success();
    let doc = short.doc();
    assert_eq!(doc["search"]["rounds"], 2);
    assert_eq!(doc["search"]["sure"], false, "{}", short.stdout);
    assert!(
        short.stdout.contains("not sure: --max-rounds stopped it"),
        "{}",
        short.stdout
    );
    assert_eq!(doc["samples"].as_array().map(Vec::len), Some(8));

    let full = mpirun_json(8, &format!("{PAIRS} --full --rounds 1"), &[]);
    full.assert_success();
    let doc = full.doc();
    assert_eq!(doc["method"], "full");
    assert!(doc["search"].is_null());
    assert_eq!(doc["samples"].as_array().map(Vec::len), Some(28));
    assert_eq!(doc["matrix"].as_array().map(Vec::len), Some(28));
}

#[test]
fn search_and_full_flags_that_contradict_each_other_are_refused() {
    // Before MPI starts: the search's flags with --full or --one-at-a-time.
    for args in [
        ["pairs", "--full", "--max-rounds", "3"],
        ["pairs", "--one-at-a-time", "--seed", "7"],
    ] {
        let out = collbench().args(args).output().expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("is the search's"), "{stderr}");
    }
    let out = collbench()
        .args(["pairs", "--max-rounds", "0"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    // After: --rounds repeats the full matrix, which 8 ranks do not get without --full.
    let _turn = turn();
    let run = mpirun_json(8, &format!("{PAIRS} --rounds 2"), &[]);
    assert_eq!(run.code(), Some(2), "{}\n{}", run.stdout, run.stderr);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains("--rounds 2") && said.contains("--full"),
        "{said}"
    );
}
