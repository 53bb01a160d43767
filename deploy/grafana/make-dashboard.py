#!/usr/bin/env python3
"""Regenerate gateway-dashboard.json (python3 deploy/grafana/make-dashboard.py).

Panels use two data sources chosen at import time: ${prom} (Prometheus scraping the
gateway's GET /metrics) and ${influx} (InfluxDB 2 with Flux, bucket in ${bucket});
one InfluxQL panel is included for InfluxDB 1.x / v1-compatibility setups (${influxql}).
"""
import json
import os

PROM = {"type": "prometheus", "uid": "${prom}"}
FLUX = {"type": "influxdb", "uid": "${influx}"}
INFLUXQL = {"type": "influxdb", "uid": "${influxql}"}

panels = []
pid = 0


def add(title, targets, unit="short", kind="timeseries", w=12, h=8, ds=PROM, desc="", **opts):
    global pid
    pid += 1
    n = len(panels)
    # two panels per row of 24 columns
    x = 0 if (sum(p["gridPos"]["w"] for p in panels if p["type"] != "row") // 12) % 2 == 0 else 12
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": ds,
        "gridPos": {"h": h, "w": w, "x": x if w == 12 else 0, "y": pid * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": opts or {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": targets,
    }
    panels.append(p)


def prom(expr, legend=""):
    return {"refId": chr(ord("A") + 0), "datasource": PROM, "expr": expr, "legendFormat": legend}


def proms(*pairs):
    out = []
    for i, (expr, legend) in enumerate(pairs):
        t = prom(expr, legend)
        t["refId"] = chr(ord("A") + i)
        out.append(t)
    return out


add("Readings in /s", proms(
    ('sum by (instance) (rate(gateway_readings_in_total{instance=~"$instance"}[$__rate_interval]))', "{{instance}} readings"),
    ('sum by (instance) (rate(gateway_mqtt_messages_total{instance=~"$instance"}[$__rate_interval]))', "{{instance}} MQTT messages"),
), unit="ops", desc="Readings decoded and normalized, and raw MQTT messages, per gateway instance.")
add("Decode errors by reason /s", proms(
    ('sum by (reason) (rate(gateway_decode_errors_total{instance=~"$instance"}[$__rate_interval]))', "{{reason}}"),
    ('sum(rate(gateway_dead_letter_published_total{instance=~"$instance"}[$__rate_interval]))', "dead-lettered"),
), unit="ops")
add("Outbox depth (records)", proms(
    ('gateway_outbox_depth_records{instance=~"$instance"}', "{{instance}}"),
), desc="Readings durable on disk, not yet accepted by the database. Growing = the database is down or slow.")
add("Outbox size on disk", proms(
    ('gateway_outbox_bytes{instance=~"$instance"}', "{{instance}}"),
), unit="bytes", desc="Compare with [storage.outbox] max_bytes: at the bound intake pauses (backpressure) or drops oldest.")
add("Sink write latency (quantiles)", proms(
    ('histogram_quantile(0.5, sum by (le) (rate(gateway_sink_write_latency_seconds_bucket{instance=~"$instance"}[$__rate_interval])))', "p50"),
    ('histogram_quantile(0.95, sum by (le) (rate(gateway_sink_write_latency_seconds_bucket{instance=~"$instance"}[$__rate_interval])))', "p95"),
    ('histogram_quantile(0.99, sum by (le) (rate(gateway_sink_write_latency_seconds_bucket{instance=~"$instance"}[$__rate_interval])))', "p99"),
), unit="s")
add("Sink retries, splits and rejected lines /s", proms(
    ('sum by (reason) (rate(gateway_sink_retries_total{instance=~"$instance"}[$__rate_interval]))', "retry {{reason}}"),
    ('sum(rate(gateway_sink_splits_total{instance=~"$instance"}[$__rate_interval]))', "batch splits"),
    ('sum(rate(gateway_sink_rejected_lines_total{instance=~"$instance"}[$__rate_interval]))', "rejected lines"),
    ('sum(rate(gateway_outbox_full_total{instance=~"$instance"}[$__rate_interval]))', "outbox full"),
    ('sum(rate(gateway_outbox_dropped_total{instance=~"$instance"}[$__rate_interval]))', "outbox dropped"),
), unit="ops")
add("Devices online / known", proms(
    ('sum(gateway_devices_online{instance=~"$instance"})', "online"),
    ('sum(gateway_devices_known{instance=~"$instance"})', "known"),
    ('sum(gateway_modbus_devices_online{instance=~"$instance"})', "modbus online"),
))
add("Broker connection", proms(
    ('gateway_mqtt_connected{instance=~"$instance"}', "{{instance}} connected"),
    ('increase(gateway_mqtt_reconnects_total{instance=~"$instance"}[$__range])', "{{instance}} reconnects in range"),
), kind="stat", opts={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"})
add("Modbus poll results /s", proms(
    ('sum by (device, result) (rate(gateway_modbus_polls_total{instance=~"$instance"}[$__rate_interval]))', "{{device}} {{result}}"),
), unit="ops")
add("Modbus poll duration p95", proms(
    ('histogram_quantile(0.95, sum by (le) (rate(gateway_modbus_poll_seconds_bucket{instance=~"$instance"}[$__rate_interval])))', "p95"),
), unit="s")
add("Sequence gaps and duplicates /s", proms(
    ('sum(rate(gateway_sequence_lost_total{instance=~"$instance"}[$__rate_interval]))', "lost (by device seq)"),
    ('sum(rate(gateway_sequence_duplicates_total{instance=~"$instance"}[$__rate_interval]))', "duplicates dropped"),
    ('sum(rate(gateway_clock_replaced_total{instance=~"$instance"}[$__rate_interval]))', "device clock replaced"),
), unit="ops")

flux_level = """from(bucket: "${bucket}")
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "grease_trap" and r._field == "level_mm")
  |> filter(fn: (r) => contains(value: r.site, set: ${site:json}))
  |> group(columns: ["site", "device"])
  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)"""
add("Grease trap level_mm by site (Flux, InfluxDB 2)", [
    {"refId": "A", "datasource": FLUX, "query": flux_level},
], unit="lengthmm", ds=FLUX, w=24, desc="Measurement = stream, tags site/device, one field per metric (DESIGN.md).")
add("Grease trap level_mm by site (InfluxQL)", [
    {"refId": "A", "datasource": INFLUXQL, "rawQuery": True, "resultFormat": "time_series",
     "query": 'SELECT mean("level_mm") FROM "grease_trap" WHERE "site" =~ /^${site:regex}$/ AND $timeFilter GROUP BY time($__interval), "site", "device" fill(none)',
     "alias": "$tag_site $tag_device"},
], unit="lengthmm", ds=INFLUXQL, w=24, desc="For InfluxDB 1.x or the v1 compatibility API (DBRP mapping).")
add("Latest grease trap level per device", [
    {"refId": "A", "datasource": FLUX, "query": """from(bucket: "${bucket}")
  |> range(start: -1d)
  |> filter(fn: (r) => r._measurement == "grease_trap" and r._field == "level_mm")
  |> filter(fn: (r) => contains(value: r.site, set: ${site:json}))
  |> last()
  |> group()
  |> keep(columns: ["site", "device", "_time", "_value"])"""},
], kind="table", ds=FLUX, w=24, unit="lengthmm", opts={"showHeader": True})

# simple vertical layout: full-width or pairs
y = 0
col = 0
for p in panels:
    w = p["gridPos"]["w"]
    if w == 24 and col != 0:
        y += 8
        col = 0
    p["gridPos"].update({"x": col, "y": y})
    if w == 24:
        y += p["gridPos"]["h"]
    else:
        col += 12
        if col >= 24:
            col = 0
            y += p["gridPos"]["h"]

dashboard = {
    "__inputs": [
        {"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"},
        {"name": "DS_INFLUXDB", "label": "InfluxDB (Flux)", "type": "datasource", "pluginId": "influxdb", "pluginName": "InfluxDB"},
    ],
    "uid": "enforcement-gateway",
    "title": "Enforcement gateway",
    "description": "Readings and the gateway's own metrics (GET /metrics on every instance).",
    "tags": ["enforcement", "gateway", "iot"],
    "timezone": "browser",
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "graphTooltip": 1,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [
        {"name": "prom", "label": "Prometheus", "type": "datasource", "query": "prometheus"},
        {"name": "influx", "label": "InfluxDB (Flux)", "type": "datasource", "query": "influxdb"},
        {"name": "influxql", "label": "InfluxDB (InfluxQL)", "type": "datasource", "query": "influxdb"},
        {"name": "bucket", "label": "Bucket", "type": "textbox", "query": "enforcement",
         "current": {"text": "enforcement", "value": "enforcement"}},
        {"name": "instance", "label": "Gateway", "type": "query", "datasource": PROM,
         "query": {"query": "label_values(gateway_readings_in_total, instance)", "refId": "instance"},
         "definition": "label_values(gateway_readings_in_total, instance)",
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2},
        {"name": "site", "label": "Site", "type": "query", "datasource": FLUX,
         "query": 'import "influxdata/influxdb/schema"\nschema.tagValues(bucket: "${bucket}", tag: "site", predicate: (r) => r._measurement == "grease_trap")',
         "includeAll": True, "multi": True, "refresh": 2},
    ]},
    "annotations": {"list": []},
    "panels": panels,
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gateway-dashboard.json")
with open(out, "w") as f:
    json.dump(dashboard, f, indent=2)
    f.write("\n")
print(out)
