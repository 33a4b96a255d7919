//! Names keel makes up.

const ADJECTIVES: &[&str] = &[
    "amber", "brave", "calm", "dapper", "eager", "fleet", "gentle", "honest", "ivory", "jolly",
    "keen", "lucid", "mellow", "nimble", "omber", "placid", "quiet", "rustic", "sturdy", "tidy",
    "upbeat", "vivid", "wise", "young", "zesty",
];
const NOUNS: &[&str] = &[
    "anchor", "badger", "comet", "delta", "ember", "falcon", "grove", "harbor", "island", "jetty",
    "kestrel", "lagoon", "meadow", "narwhal", "otter", "pier", "quay", "reef", "sloop", "tide",
    "vessel", "wharf", "yawl", "zephyr",
];

/// A readable random run name such as `brave-otter-417`.
pub(crate) fn random_run_name(seed: &str) -> String {
    let h = seed
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    format!(
        "{}-{}-{}",
        ADJECTIVES[(h % ADJECTIVES.len() as u64) as usize],
        NOUNS[((h / 31) % NOUNS.len() as u64) as usize],
        (h / 1000) % 1000
    )
}
