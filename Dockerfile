# The operator image (also the source of the builder code that build pods copy in).
# Not built in this repository's CI: there is no container engine on our machines. The layout below is
# what charts/trtllm-operator and the build Job's init container ("cp -a /app/site/. /opt/trtllm-operator/")
# expect.
FROM python:3.12-slim AS build
COPY pyproject.toml README.md /src/
COPY operator /src/operator
RUN pip install --no-cache-dir /src \
 # The builder runs inside the TensorRT-LLM image, which already has pydantic and nvidia-ml-py;
 # it gets our package plus structlog, copied from /app/site by the build pod's init container.
 && pip install --no-cache-dir --no-deps --target /app/site /src structlog

FROM python:3.12-slim
COPY --from=build /usr/local/lib/python3.12/site-packages /usr/local/lib/python3.12/site-packages
COPY --from=build /usr/local/bin/trtllm-operator /usr/local/bin/trtllm-operator-builder /usr/local/bin/
COPY --from=build /app/site /app/site
USER 65532:65532
ENTRYPOINT ["trtllm-operator"]
CMD ["run", "--health-addr=:8080", "--metrics-addr=:8081"]
