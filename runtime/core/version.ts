/**
 * The one version of this package's runtime: the CLI's --version, the charts the CLI names, the start line of
 * every process and its `*_build_info` metric. A test keeps it equal to package.json's.
 */
export const CLOUDTASER_VERSION = '0.2.0';
