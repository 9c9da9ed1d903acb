//! Container ids and names, as Docker makes them.

/// Adjectives and surnames for generated names (`eager_turing`), a short
/// cut of Docker's lists.
const LEFT: [&str; 24] = [
    "admiring", "agitated", "amazing", "bold", "brave", "clever", "cool", "eager", "ecstatic",
    "elegant", "focused", "gallant", "happy", "jolly", "keen", "loving", "nifty", "peaceful",
    "quirky", "serene", "sharp", "stoic", "trusting", "vibrant",
];
const RIGHT: [&str; 24] = [
    "agnesi", "babbage", "bell", "curie", "darwin", "euclid", "fermi", "gauss", "hopper",
    "hypatia", "kepler", "lamarr", "lovelace", "meitner", "noether", "pascal", "ritchie",
    "shannon", "thompson", "torvalds", "turing", "volhard", "wozniak", "yalow",
];

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // getrandom only fails before the kernel's pool is seeded at boot; a
    // weaker id then is still unique enough together with the pid and time.
    if rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty()).is_err() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            ^ u128::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8;
        }
    }
    buf
}

/// A new 64-hex container id.
pub fn random_id() -> String {
    hex::encode(random_bytes::<32>())
}

/// A free `adjective_surname`, with a number appended once those run out.
pub fn generate(taken: impl Fn(&str) -> bool) -> String {
    for attempt in 0u32..1000 {
        let [a, b] = random_bytes::<2>();
        let mut name = format!(
            "{}_{}",
            LEFT[a as usize % LEFT.len()],
            RIGHT[b as usize % RIGHT.len()]
        );
        if attempt >= 16 {
            name.push_str(&(attempt - 15).to_string());
        }
        if !taken(&name) {
            return name;
        }
    }
    format!("strata_{}", &random_id()[..12])
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn is_valid(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for (name, ok) in [
            ("c1", true),
            ("a.b-c_d", true),
            ("_x", false),
            ("", false),
            ("a/b", false),
            ("é", false),
        ] {
            assert_eq!(is_valid(name), ok, "{name}");
        }
    }

    #[test]
    fn generated_names_avoid_taken_ones() {
        let first = generate(|_| false);
        assert!(is_valid(&first) && first.contains('_'));
        let other = generate(|n| n == first);
        assert_ne!(other, first);
        let numbered = generate(|n| !n.chars().last().is_some_and(|c| c.is_ascii_digit()));
        assert!(
            numbered.ends_with(|c: char| c.is_ascii_digit()),
            "{numbered}"
        );
        assert_eq!(random_id().len(), 64);
    }
}
