//! `gateway demo`: the embedded default. An in-process MQTT broker (rumqttd), a fleet of
//! simulated restaurants, manholes and kitchen cameras running the real firmware logic
//! (`firmware::sim`), and the gateway itself with storage under a data folder. Nothing to
//! install; open the printed address to see the devices.

use crate::app::{Gateway, shutdown_signal};
use crate::config::Config;
use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub struct DemoOptions {
    pub data: PathBuf,
    pub listen: String,
    pub mqtt_port: u16,
    pub restaurants: u32,
    pub manholes: u32,
    pub duration_s: u64,
    /// The dashboard's `web/` folder; `None`: found from the working folder or the binary.
    pub dashboard_dir: Option<PathBuf>,
}

/// Starts rumqttd on `127.0.0.1:port` in its own threads (it runs its own runtime).
fn start_broker(port: u16) -> anyhow::Result<()> {
    let toml = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "demo"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 65536
    max_inflight_count = 500
    dynamic_filters = true
"#
    );
    let cfg: rumqttd::Config = toml::from_str(&toml).context("embedded broker config")?;
    // Fail early and clearly if the port is taken, rather than inside the broker thread.
    std::net::TcpListener::bind(("127.0.0.1", port))
        .with_context(|| format!("MQTT port 127.0.0.1:{port} is in use (try --mqtt-port)"))?;
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(cfg);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .context("starting the embedded broker")?;
    Ok(())
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    start_broker(opts.mqtt_port)?;
    let mut cfg = Config::default();
    cfg.mqtt.url = format!("mqtt://127.0.0.1:{}", opts.mqtt_port);
    cfg.mqtt.client_id = "demo-gateway".into();
    cfg.storage.dir = opts.data.clone();
    cfg.http.listen = opts.listen.clone();
    cfg.dashboard.dir = opts.dashboard_dir.clone();
    // The simulator replays two days of history at 60x: keep its device times.
    cfg.devices.max_clock_skew_s = (DEMO_HISTORY_MS / 1000) as u64 + 3600;
    cfg.registry.file = Some(demo_registry(&opts)?);
    // The example matter catalogue (placeholder legal bases), so the clue detail shows a
    // matter, its bands and leniency entries, and a decision can be tried.
    cfg.clues.matters = Config::from_toml(include_str!("../../deploy/gateway.example.toml"))?
        .clues
        .matters;
    cfg.org = demo_org(&opts);
    cfg.clues.owner_notify = Config::from_toml(DEMO_OWNER_CHANNELS)?.clues.owner_notify;
    cfg.validate()?;
    // Give the broker thread a moment to listen; the client retries anyway.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let token_file = demo_admin_token(&cfg)?;
    let gw = Gateway::start(cfg).await?;
    info!(
        "demo running: dashboard at http://{}/ , devices at http://{}/api/v1/devices, metrics at http://{}/metrics",
        gw.http_addr, gw.http_addr, gw.http_addr
    );
    info!(file = %token_file.display(), "demo admin API token (Authorization: Bearer ...) written");
    let cancel = CancellationToken::new();
    let fleet = tokio::spawn(simulate(
        opts.mqtt_port,
        opts.restaurants,
        opts.manholes,
        cancel.clone(),
    ));
    if opts.duration_s > 0 {
        tokio::select! {
            _ = shutdown_signal() => {},
            _ = tokio::time::sleep(Duration::from_secs(opts.duration_s)) => {},
        }
    } else {
        shutdown_signal().await;
    }
    cancel.cancel();
    if let Err(e) = fleet.await {
        warn!(error = %e, "simulator task failed");
    }
    gw.shutdown().await;
    Ok(())
}

/// A small organisation for the simulated fleet, so the dashboard shows units, lead and
/// assisting departments and a unit filter: a city, one county, a township of the restaurants
/// and one of the manholes. Manhole-cover clues are led by urban management with the
/// environment office assisting; every other clue by urban management.
fn demo_org(opts: &DemoOptions) -> crate::clue::org::OrgConfig {
    use crate::clue::org::config::{DispatchConfig, UnitConfig};
    use crate::clue::org::tree::UnitLevel;
    let unit =
        |id: &str, name: &str, parent: Option<&str>, level, sites: Vec<String>, depts: &[&str]| {
            UnitConfig {
                id: id.into(),
                name: name.into(),
                parent: parent.map(Into::into),
                level,
                sites,
                departments: depts.iter().map(|d| d.to_string()).collect(),
            }
        };
    let restaurants = (1..=opts.restaurants)
        .map(|n| format!("r-{n:03}"))
        .collect();
    let manholes = (1..=opts.manholes).map(|n| format!("mh-{n:03}")).collect();
    crate::clue::org::OrgConfig {
        units: vec![
            unit(
                "demo-city",
                "演示市",
                None,
                UnitLevel::City,
                vec![],
                &["urban-management"],
            ),
            unit(
                "chengdong",
                "城东区",
                Some("demo-city"),
                UnitLevel::County,
                vec![],
                &["urban-management", "environment", "market"],
            ),
            unit(
                "meishi",
                "美食街道",
                Some("chengdong"),
                UnitLevel::Township,
                restaurants,
                &["urban-management", "market"],
            ),
            unit(
                "hepan",
                "河畔街道",
                Some("chengdong"),
                UnitLevel::Township,
                manholes,
                &["urban-management"],
            ),
        ],
        dispatch: vec![
            DispatchConfig {
                matter: "manhole_cover".into(),
                unit: "chengdong".into(),
                lead: "urban-management".into(),
                assisting: vec!["environment".into()],
            },
            DispatchConfig {
                matter: "*".into(),
                unit: "chengdong".into(),
                lead: "urban-management".into(),
                assisting: vec![],
            },
        ],
        major: Default::default(),
    }
}

/// The demo's API needs a token like any other: create an admin token and leave it in
/// `{data}/admin.token` (readable by the owner only) so the person running the demo can use it.
fn demo_admin_token(cfg: &Config) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(&cfg.storage.dir)
        .with_context(|| format!("creating {}", cfg.storage.dir.display()))?;
    let path = cfg.storage.dir.join("admin.token");
    if path.exists() {
        return Ok(path);
    }
    let store =
        crate::clue::pool::open_store(&cfg.clue_setup()).context("opening the clue store")?;
    let (_, token) = crate::clue::auth::create_token(
        store.tokens().as_ref(),
        crate::clue::auth::Role::Admin,
        &[],
        Some("demo"),
        crate::clock::now_ms(),
    )
    .context("creating the demo admin token")?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut f, format!("{token}\n").as_bytes())?;
    Ok(path)
}

/// Owner-notice channels of the demo, so the clue page's send form has channels to offer. No
/// provider runs in the demo (nothing listens on loopback port 9): a notice is queued, tried
/// three times and recorded as failed. Point `url` at a real SMS or letter service.
const DEMO_OWNER_CHANNELS: &str = r#"
[[clues.owner_notify.channels]]
name = "sms"
kind = "webhook"
url = "http://127.0.0.1:9/sms"
contact = "phone"
max_attempts = 3
retry_min_ms = 1000
retry_max_ms = 5000
templates = ["first_notice", "reminder"]
[[clues.owner_notify.channels]]
name = "letter"
kind = "webhook"
url = "http://127.0.0.1:9/letters"
contact = "address"
max_attempts = 3
retry_min_ms = 1000
retry_max_ms = 5000
"#;

/// The simulated fleet in a device registry (`{data}/registry.toml`, written once, then the
/// demo user's to edit): shops and owners, and made-up positions around People's Square in
/// Shanghai, so clue subjects carry a location and the dashboard's map has points.
fn demo_registry(opts: &DemoOptions) -> anyhow::Result<PathBuf> {
    use crate::registry::{DeviceEntry, DeviceKind};
    let path = opts.data.join("registry.toml");
    if path.exists() {
        return Ok(path);
    }
    let at = |row: u32, col: u32, dx: f64| {
        Some(crate::clue::signal::GeoPoint {
            lat: 31.2304 + 0.0011 * row as f64,
            lon: 121.4737 + 0.0014 * col as f64 + dx,
        })
    };
    let entry = |site: String, device: &str, kind| DeviceEntry {
        site,
        device: device.into(),
        kind,
        name: None,
        dev_eui: None,
        location: None,
        owner: None,
        owner_phone: None,
        owner_address: None,
        shop: None,
        installation: Default::default(),
    };
    let mut entries = Vec::new();
    for n in 1..=opts.restaurants {
        let site = format!("r-{n:03}");
        let (row, col) = ((n - 1) / 6, (n - 1) % 6);
        for (device, kind, dx) in [
            ("trap-1", DeviceKind::GreaseTrap, 0.0),
            ("cam-1", DeviceKind::KitchenCamera, 0.0002),
        ] {
            entries.push(DeviceEntry {
                location: at(row, col, dx),
                shop: Some(format!("Restaurant {n}")),
                owner: Some(format!("Owner of restaurant {n}")),
                ..entry(site.clone(), device, kind)
            });
        }
    }
    for n in 1..=opts.manholes {
        let (row, col) = ((n - 1) / 6, (n - 1) % 6);
        entries.push(DeviceEntry {
            location: at(row, col, 0.0007).map(|p| crate::clue::signal::GeoPoint {
                lat: p.lat - 0.00055,
                ..p
            }),
            owner: Some("Municipal drainage office".into()),
            ..entry(format!("mh-{n:03}"), "cover-1", DeviceKind::ManholeCover)
        });
    }
    crate::registry::file::write_pending(&path, &entries)?.commit()?;
    Ok(path)
}

/// How much simulated history the demo replays before catching up with the wall clock.
const DEMO_HISTORY_MS: i64 = 2 * 24 * 3600 * 1000;

/// Runs the firmware simulator against the embedded broker: one restaurant has a trap and a
/// kitchen camera, streets have manhole covers. Simulated time starts two days back and runs
/// 60x faster, so traps fill, pump-outs and night-time dumping show up within minutes.
async fn simulate(port: u16, restaurants: u32, manholes: u32, cancel: CancellationToken) {
    let cfg = firmware::sim::FleetConfig {
        broker_host: "127.0.0.1".into(),
        broker_port: port,
        client_id_prefix: "demo-sim".into(),
        restaurants,
        manholes,
        cameras: restaurants,
        speed: 60.0,
        start_ms: Some(crate::clock::now_ms() - DEMO_HISTORY_MS),
        // A licensed pump-out is legitimate because the crew registers it
        // (`POST /api/v1/pumpouts`); the simulator has no crew to do that, so its traps are
        // not pumped out at random: an unregistered pump-out would be a false "illegal
        // discharge" clue. Night-time dumping stays (the violation the demo shows).
        restaurant: firmware::sim::RestaurantParams {
            pumpout_every_days: 0.0,
            ..Default::default()
        },
        ..Default::default()
    };
    match firmware::sim::run_fleet(cfg, cancel).await {
        Ok(stats) => info!(
            messages = stats.messages,
            events = stats.events,
            "simulator stopped"
        ),
        Err(e) => warn!(error = %e, "simulator failed"),
    }
}
