//! Start one of each test server and print their addresses, for poking at
//! them by hand: `cargo run -p e2e --example servers`. Stops them on Enter
//! (or when this process dies: the harness watchdog kills them within ~1 s).

fn main() -> anyhow::Result<()> {
    let mosquitto = e2e::Mosquitto::start()?;
    let vm = e2e::VictoriaMetrics::start()?;
    let influx = e2e::Influx1::start()?;
    println!(
        "mosquitto        {}  (dir {})",
        mosquitto.url(),
        mosquitto.dir().display()
    );
    println!(
        "victoria-metrics {}  (dir {})",
        vm.url(),
        vm.dir().display()
    );
    println!(
        "influxd 1.x      {}  db {:?}  (dir {})",
        influx.url(),
        influx.database(),
        influx.dir().display()
    );
    println!("press Enter to stop");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(())
}
