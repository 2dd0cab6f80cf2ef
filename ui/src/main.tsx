// The Kiln web console: sign in with an API token, then the node list, a node's page, the image
// catalog and the discovered machines. Hash routes (#/nodes/…) keep every page one static file.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, session, whenUnauthorized } from './api.ts';
import { Discovered } from './discovered.tsx';
import { Images } from './images.tsx';
import { type LiveMode, onMode, startLive, stopLive } from './live.ts';
import { NodePage } from './node.tsx';
import { NodeList } from './nodes.tsx';
import { detectRole } from './role.ts';
import type { Role } from './types.ts';
import { ErrorBox, messageOf } from './widgets.tsx';

type Route =
  | { page: 'nodes' }
  | { page: 'node'; ident: string }
  | { page: 'images' }
  | { page: 'discovered' };

function routeOf(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'nodes' && parts[1]) return { page: 'node', ident: parts[1] };
  if (parts[0] === 'images') return { page: 'images' };
  if (parts[0] === 'discovered') return { page: 'discovered' };
  return { page: 'nodes' };
}

function useRoute(): Route {
  const [route, setRoute] = useState(routeOf(location.hash));
  useEffect(() => {
    const f = () => setRoute(routeOf(location.hash));
    addEventListener('hashchange', f);
    return () => removeEventListener('hashchange', f);
  }, []);
  return route;
}

interface Who {
  role: Role;
  name: string | null;
}

function SignIn({ message, onSignedIn }: { message: string | null; onSignedIn: (w: Who) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(message);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    session.set(token.trim());
    try {
      // Any read proves the token; the role decides which actions the console offers.
      await api('GET', '/v1/nodes?limit=1');
      onSignedIn(await detectRole());
    } catch (err) {
      session.clear();
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="sign-in">
      <h1>Kiln console</h1>
      <form onSubmit={submit} aria-describedby="sign-in-help">
        <p id="sign-in-help">
          Sign in with an API token (an admin creates one with{' '}
          <code>kiln token create NAME --role reader</code>). The token stays in this browser tab only.
        </p>
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          required
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
        />
        <button type="submit" class="primary" disabled={busy}>
          Sign in
        </button>
      </form>
      <ErrorBox message={error} title="Not signed in" />
    </main>
  );
}

function LiveBadge() {
  const [mode, setMode] = useState<LiveMode>('off');
  useEffect(() => onMode(setMode), []);
  const text = mode === 'stream' ? 'live' : mode === 'polling' ? 'refreshing every 2 s' : 'not live';
  return (
    <span class={`live live-${mode}`} title="How this page follows the conductor">
      {text}
    </span>
  );
}

function App() {
  const route = useRoute();
  const [who, setWho] = useState<Who | null>(null);
  const [signInMessage, setSignInMessage] = useState<string | null>(null);
  const [checking, setChecking] = useState(Boolean(session.get()));

  const signOut = (message: string | null) => {
    session.clear();
    stopLive();
    setWho(null);
    setSignInMessage(message);
  };

  useEffect(() => {
    whenUnauthorized((m) => signOut(m));
    // A token from earlier in this tab: check it again rather than trust it.
    if (session.get())
      detectRole()
        .then(setWho)
        .catch((e) => {
          if (!(e instanceof ApiError && e.status === 401)) signOut(messageOf(e));
        })
        .finally(() => setChecking(false));
  }, []);

  useEffect(() => {
    if (who) startLive();
  }, [who]);

  // After a page change, move focus to its heading, so keyboard and screen-reader users start there.
  useEffect(() => {
    document.getElementById('page-title')?.focus();
  }, [route, who]);

  if (checking) return <p class="loading">Checking the saved token…</p>;
  if (!who)
    return (
      <SignIn
        message={signInMessage}
        onSignedIn={(w) => {
          setSignInMessage(null);
          setWho(w);
        }}
      />
    );

  const current = (page: Route['page']) => (route.page === page ? 'page' : undefined);
  return (
    <>
      <button type="button" class="skip" onClick={() => document.getElementById('page-title')?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <span class="brand">Kiln</span>
        <nav aria-label="Main">
          <a href="#/nodes" aria-current={current('nodes') ?? current('node')}>
            Nodes
          </a>
          <a href="#/discovered" aria-current={current('discovered')}>
            Discovered
          </a>
          <a href="#/images" aria-current={current('images')}>
            Images
          </a>
        </nav>
        <LiveBadge />
        <span class="who">
          {who.name ? `${who.name} · ` : ''}
          {who.role === 'unknown' ? 'role unknown' : who.role}
        </span>
        <button type="button" onClick={() => signOut(null)}>
          Sign out
        </button>
      </header>
      <main id="main">
        {route.page === 'node' ? (
          <NodePage key={route.ident} ident={route.ident} role={who.role} />
        ) : route.page === 'images' ? (
          <Images />
        ) : route.page === 'discovered' ? (
          <Discovered role={who.role} />
        ) : (
          <NodeList />
        )}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
