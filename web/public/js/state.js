// Who is signed in (from GET /api/v1/whoami) and the live stream's controller.
export const session = { me: null, stream: null };
