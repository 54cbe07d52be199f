export { renderReport, writeReport, REPORT_FILE } from './render.js';
export type { ReportOptions } from './render.js';
export { thumbnail, thumbnails, DEFAULT_THUMBNAIL_SIZE } from './thumbnails.js';
export type { Thumbnail } from './thumbnails.js';
