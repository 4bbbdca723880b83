# The Python/Flask receiver from the spec (spec/webhooks-disponiveis.md, "Exemplo de
# Implementação"), copied verbatim. Changes, as DESIGN.md allows: `import os` and
# `import sys` below; WEBHOOK_SECRET comes from the environment (default: the spec's);
# the port is the first command-line argument; the missing no-op handle_tarefa_criada.
# Usage: WEBHOOK_SECRET=... python flask_receiver.py PORT
# tests/system/test_spec_receivers.py checks this file still matches the spec.
# fmt: off
# ruff: noqa: F401, I001, W293
import os
import sys

from flask import Flask, request, jsonify
import hmac
import hashlib
import json

app = Flask(__name__)

WEBHOOK_SECRET = os.environ.get('WEBHOOK_SECRET', 'sua_chave_secreta')

@app.route('/webhook', methods=['POST'])
def webhook():
    # Verificar assinatura
    signature = request.headers.get('X-Webhook-Signature', '')
    payload = request.get_data(as_text=True)
    
    if not verify_signature(payload, signature, WEBHOOK_SECRET):
        return jsonify({'error': 'Assinatura inválida'}), 401
    
    # Processar evento
    event = request.get_json()
    
    if event['event'] == 'cliente.criado':
        handle_cliente_criado(event['data'])
    elif event['event'] == 'tarefa.criada':
        handle_tarefa_criada(event['data'])
    # ... outros eventos
    
    return jsonify({'success': True})

def verify_signature(payload, signature, secret):
    expected_signature = hmac.new(
        secret.encode('utf-8'),
        payload.encode('utf-8'),
        hashlib.sha256
    ).hexdigest()
    
    return hmac.compare_digest(
        signature.replace('sha256=', ''),
        expected_signature
    )

def handle_cliente_criado(data):
    # Processar criação de cliente
    print(f"Novo cliente criado: {data}")

def handle_tarefa_criada(data):
    pass

if __name__ == '__main__':
    app.run(port=int(sys.argv[1]))
