export { buildGateway, startGateway, type BuiltGateway, type GatewayOptions } from './app.js';
export { resolveServeConfig, SETTINGS as SERVE_SETTINGS, type ServeConfig, type ServeSettings } from './config.js';
export { ApiError, toApiError } from './errors.js';
export { Gateway } from './gateway.js';
export { parseEcrSettings, parseEcrChatRequest, type EcrSettings, type AuditLevel } from './request-settings.js';
export { shutdown, closeOnSignal } from './shutdown.js';
