// Small shared pieces: data loading that follows live updates, the progress bar, the
// confirmation dialog, and the message regions screen readers announce.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.ts';
import { percent, progressText } from './format.ts';
import { type LiveEvent, subscribe } from './live.ts';
import type { Progress } from './types.ts';

export function messageOf(e: unknown): string {
  return e instanceof ApiError || e instanceof Error ? e.message : String(e);
}

/**
 * Loads with `load` and loads again on each live update `relevant` accepts (every one by default);
 * one request at a time, a burst of updates becomes one more load.
 */
export function useLoad<T>(
  load: () => Promise<T>,
  deps: unknown[],
  relevant: (e: LiveEvent | null) => boolean = () => true,
): { data: T | undefined; error: string | null; reload: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const busy = useRef(false);
  const again = useRef(false);
  const alive = useRef(true);
  // The caller's deps say when `load` changes.
  const reload = useCallback(() => {
    if (busy.current) {
      again.current = true;
      return;
    }
    busy.current = true;
    load()
      .then((d) => {
        if (!alive.current) return;
        setData(d);
        setError(null);
      })
      .catch((e) => alive.current && setError(messageOf(e)))
      .finally(() => {
        busy.current = false;
        if (again.current && alive.current) {
          again.current = false;
          reload();
        }
      });
  }, deps);
  useEffect(() => {
    alive.current = true;
    reload();
    const off = subscribe((e) => relevant(e) && reload());
    return () => {
      alive.current = false;
      off();
    };
  }, [reload]);
  return { data, error, reload };
}

export function ProgressBar({ progress, label }: { progress: Progress; label: string }) {
  const pct = percent(progress);
  const text = progressText(progress);
  return (
    <div class="progress">
      <div
        class={`bar${pct == null ? ' indeterminate' : ''}`}
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct ?? undefined}
        aria-valuetext={text}
      >
        <div class="fill" style={{ width: `${pct ?? 100}%` }} />
      </div>
      <span class="progress-text">{text}</span>
    </div>
  );
}

/** An error region: announced at once (role=alert), the API's message as it wrote it. */
export function ErrorBox({ message, title }: { message: string | null; title?: string }) {
  return (
    <div role="alert" class={message ? 'error-box' : 'visually-hidden'}>
      {message ? (
        <>
          {title ? <strong>{title}: </strong> : null}
          <span class="error-message">{message}</span>
        </>
      ) : null}
    </div>
  );
}

export function StatusLine({ message }: { message: string | null }) {
  return (
    <p class="status-line" aria-live="polite">
      {message ?? ''}
    </p>
  );
}

/**
 * A modal confirmation (the native <dialog>: focus stays inside, Escape cancels). `children` may
 * hold the action's inputs; the confirm button submits them.
 */
export function ConfirmDialog(props: {
  title: string;
  confirmLabel: string;
  destructive?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
  children?: ComponentChildren;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      class="confirm"
      aria-labelledby="confirm-title"
      onCancel={(e) => {
        e.preventDefault();
        props.onCancel();
      }}
    >
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          props.onConfirm();
        }}
      >
        <h2 id="confirm-title">{props.title}</h2>
        {props.children}
        <div class="dialog-buttons">
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" class={props.destructive ? 'danger' : 'primary'}>
            {props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}
