// MD5 lives in src/format (bytes in, bytes out) so format code (RTSP Digest auth) can use it without
// importing the core; re-exported here for the core's existing users.
export { md5, md5Hex } from '../format/md5.ts';
