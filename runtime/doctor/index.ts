export {
  type DoctorLink,
  type DoctorReport,
  type DoctorStep,
  formatDoctorReport,
  SOURCE_LINKS,
  TARGET_LINKS,
} from './report.js';
export { runSourceDoctor, type SourceDoctorOptions } from './source.js';
export { runTargetDoctor, type TargetDoctorKube, type TargetDoctorOptions } from './target.js';
