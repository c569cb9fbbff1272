import pkg from "../package.json" with { type: "json" };

declare const BUILD_VERSION: string | undefined;

/** The build embeds BUILD_VERSION; running from source falls back to package.json. */
export const VERSION: string = typeof BUILD_VERSION === "string" ? BUILD_VERSION : `${pkg.version}-dev`;
