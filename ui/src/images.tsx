// The image catalog, as GET /v1/images shows it (origin URLs with their credentials masked).
import { api } from './api.ts';
import { bytes, when } from './format.ts';
import type { Image } from './types.ts';
import { ErrorBox, useLoad } from './widgets.tsx';

export function Images() {
  const { data, error } = useLoad(
    () => api<{ images: Image[] }>('GET', '/v1/images'),
    [],
    (e) => e === null,
  );
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Images
      </h1>
      <ErrorBox message={error} title="Could not load the images" />
      {data && data.images.length === 0 ? (
        <p>
          No images yet. An operator adds one with kiln image create NAME --url URL --checksum sha256:HEX.
        </p>
      ) : null}
      <table class="images">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Format</th>
            <th scope="col">Type</th>
            <th scope="col">Size</th>
            <th scope="col">Checksum</th>
            <th scope="col">URL</th>
            <th scope="col">Added</th>
          </tr>
        </thead>
        <tbody>
          {(data?.images ?? []).map((i) => (
            <tr key={i.uuid}>
              <th scope="row">{i.name}</th>
              <td>{i.format}</td>
              <td>{i.image_type}</td>
              <td>{bytes(i.size)}</td>
              <td>
                <code title={i.checksum}>
                  {i.checksum_algo}:{i.checksum.slice(0, 12)}…
                </code>
              </td>
              <td class="url">{i.url}</td>
              <td>{when(i.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
