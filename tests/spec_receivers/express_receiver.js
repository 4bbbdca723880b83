// The Node.js/Express receiver from the spec (spec/webhooks-disponiveis.md, "Exemplo de
// Implementação"), copied verbatim. Changes, as DESIGN.md allows: WEBHOOK_SECRET and the
// port come from the environment (defaults: the spec's); the missing no-op
// handleTarefaCriada. Usage: WEBHOOK_SECRET=... PORT=... node express_receiver.js
// (with express@4 resolvable, e.g. through NODE_PATH).
// tests/test_spec_receivers.py checks this file still matches the spec.
const express = require('express');
const crypto = require('crypto');
const app = express();

const WEBHOOK_SECRET = process.env.WEBHOOK_SECRET || 'sua_chave_secreta';

app.use(express.json());

app.post('/webhook', (req, res) => {
  // Verificar assinatura
  const signature = req.headers['x-webhook-signature'];
  const payload = JSON.stringify(req.body);
  
  if (!verifySignature(payload, signature, WEBHOOK_SECRET)) {
    return res.status(401).json({ error: 'Assinatura inválida' });
  }
  
  // Processar evento
  const event = req.body;
  
  switch (event.event) {
    case 'cliente.criado':
      handleClienteCriado(event.data);
      break;
    case 'tarefa.criada':
      handleTarefaCriada(event.data);
      break;
    // ... outros eventos
  }
  
  // Retornar resposta rápida
  res.json({ success: true });
});

function verifySignature(payload, signature, secret) {
  const hmac = crypto.createHmac('sha256', secret);
  const digest = hmac.update(payload).digest('hex');
  return crypto.timingSafeEqual(
    Buffer.from(signature.replace('sha256=', ''), 'hex'),
    Buffer.from(digest, 'hex')
  );
}

function handleClienteCriado(data) {
  // Processar criação de cliente
  console.log('Novo cliente criado:', data);
}

function handleTarefaCriada(data) {}

app.listen(process.env.PORT || 3000, () => {
  console.log('Webhook server running on port 3000');
});
