fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    // warm-up
    let _ = passbind_webauthn::bench::bench_assertions(2_000);
    for _ in 0..3 {
        match passbind_webauthn::bench::bench_assertions(n) {
            Ok(r) => println!("{r}"),
            Err(e) => println!("error: {e}"),
        }
    }
}
