'use strict';
// OpenTelemetry metrics setup, the way a typical Node.js service does it:
// a MeterProvider with a PeriodicExportingMetricReader, an OTLP exporter and
// the runtime-node instrumentation (V8 heap spaces, GC, event loop).

const { metrics } = require('@opentelemetry/api');
const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');
const { defaultResource, resourceFromAttributes } = require('@opentelemetry/resources');
const { RuntimeNodeInstrumentation } = require('@opentelemetry/instrumentation-runtime-node');

const DEFAULT_ENDPOINTS = {
  grpc: 'http://127.0.0.1:4317',
  'http/protobuf': 'http://127.0.0.1:4318',
  'http/json': 'http://127.0.0.1:4318',
};

function envInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${raw}`);
  return Math.floor(n);
}

/** Picks the metrics exporter from OTEL_EXPORTER_OTLP_(METRICS_)PROTOCOL. */
function createExporter() {
  const protocol =
    process.env.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL || process.env.OTEL_EXPORTER_OTLP_PROTOCOL || 'grpc';
  if (!(protocol in DEFAULT_ENDPOINTS)) {
    throw new Error(`unsupported OTEL_EXPORTER_OTLP_PROTOCOL ${protocol} (use grpc, http/protobuf or http/json)`);
  }
  // The exporters read OTEL_EXPORTER_OTLP_ENDPOINT themselves; default to
  // 127.0.0.1 rather than "localhost", which may resolve to ::1 first.
  const base = (process.env.OTEL_EXPORTER_OTLP_ENDPOINT || DEFAULT_ENDPOINTS[protocol]).replace(/\/+$/, '');
  const explicit = process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT;
  let exporter;
  let url;
  if (protocol === 'grpc') {
    const { OTLPMetricExporter } = require('@opentelemetry/exporter-metrics-otlp-grpc');
    url = explicit || base;
    exporter = new OTLPMetricExporter({ url });
  } else if (protocol === 'http/protobuf') {
    const { OTLPMetricExporter } = require('@opentelemetry/exporter-metrics-otlp-proto');
    url = explicit || `${base}/v1/metrics`;
    exporter = new OTLPMetricExporter({ url });
  } else {
    const { OTLPMetricExporter } = require('@opentelemetry/exporter-metrics-otlp-http');
    url = explicit || `${base}/v1/metrics`;
    exporter = new OTLPMetricExporter({ url });
  }
  return { exporter, protocol, url };
}

/**
 * Starts metrics export. Returns the MeterProvider (call shutdown() on exit)
 * and a short description for the start-up log line.
 */
function startTelemetry({ serviceName, leak }) {
  const intervalMs = envInt('OTEL_METRIC_EXPORT_INTERVAL', 5000);
  // The reader refuses a timeout longer than the interval.
  const timeoutMs = Math.min(envInt('OTEL_METRIC_EXPORT_TIMEOUT', 30000), intervalMs);
  const { exporter, protocol, url } = createExporter();

  // defaultResource() carries telemetry.sdk.*; the SDK does not merge it itself.
  const resource = defaultResource().merge(resourceFromAttributes({
    'service.name': process.env.OTEL_SERVICE_NAME || serviceName,
    'service.version': '0.1.0',
    'service.instance.id': `${require('node:os').hostname()}-${process.pid}`,
    'process.pid': process.pid,
    'process.runtime.name': 'nodejs',
    'process.runtime.version': process.versions.node,
    'deployment.environment.name': 'test',
    'leakwatch.example.leak': leak,
  }));

  const meterProvider = new MeterProvider({
    resource,
    readers: [
      new PeriodicExportingMetricReader({
        exporter,
        exportIntervalMillis: intervalMs,
        exportTimeoutMillis: timeoutMs,
      }),
    ],
  });
  metrics.setGlobalMeterProvider(meterProvider);

  const runtime = new RuntimeNodeInstrumentation({ monitoringPrecision: 100 });
  runtime.setMeterProvider(meterProvider);

  return { meterProvider, runtime, protocol, url, intervalMs };
}

module.exports = { startTelemetry, envInt };
