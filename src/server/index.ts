/** `ecr-engine/server`: the `ecr serve` gateway in a process of your own. */
export { buildGateway, startGateway, type BuiltGateway, type GatewayOptions } from './app.js';
export { resolveServeConfig, type ServeConfig, type ServeSettings } from './config.js';
export type { Gateway } from './gateway.js';
export type { EcrSettings, AuditLevel } from './request-settings.js';
export { shutdown, closeOnSignal } from './shutdown.js';
