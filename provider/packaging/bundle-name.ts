/** File name of the single-file provider bundle in `dist/provider/` and in a filesystem mirror. */
export const BUNDLE_FILE_NAME = 'terraform-provider-cloudtaser.cjs';
