/** Types of dynalite-server.mjs. */
export declare function listenDynalite(settings: object, port?: number): Promise<{ port: number; close: () => Promise<void> }>;
