// Chinese by default, English on request; the choice is kept in localStorage.
export const dict = {
  zh: {
    'app.title': '执法线索看板', 'nav.clues': '线索', 'nav.devices': '设备', 'nav.cameras': '摄像头',
    'nav.flights': '航飞', 'nav.stats': '统计', signout: '退出',
    'signin.title': '登录', 'signin.token': '访问令牌', 'signin.go': '登录',
    'signin.help': '请输入管理员发放的令牌（gateway token create）。令牌只保存在本标签页。',
    'signin.bad': '令牌无效或已被撤销', 'signin.forbidden': '此令牌的角色不能查看线索',
    'live.on': '实时', 'live.off': '未连接',
    'role.inspector': '巡查员', 'role.supervisor': '督办员', 'role.platform': '平台', 'role.admin': '管理员',
    'role.device': '设备', 'role.drone_operator': '飞手', 'all.sites': '全部站点',
    'f.level': '等级', 'f.status': '状态', 'f.kind': '类型', 'f.site': '站点', 'f.department': '部门',
    'f.overdue': '仅超期', 'f.any': '全部', 'f.open': '未办结',
    'level.high': '高', 'level.medium': '中', 'level.low': '低',
    'status.new': '新', 'status.claimed': '已认领', 'status.assigned': '已指派', 'status.transferred': '已移交',
    'status.resolved': '已处置', 'status.dismissed': '已驳回', 'status.closed': '已关闭', 'status.reopened': '已重开',
    'esc.yellow': '黄色督办', 'esc.red': '红色督办',
    'col.id': '编号', 'col.level': '等级', 'col.title': '线索', 'col.site': '站点', 'col.status': '状态',
    'col.dept': '部门', 'col.assignee': '处理人', 'col.occ': '次数', 'col.last': '最近', 'col.deadline': '期限',
    'clues.empty': '没有符合条件的线索', 'clues.count': '共 {n} 条',
    'clue.pumpouts': '已登记的清掏', 'clue.pumpout': '清掏 {from} → {to} · {by} 于 {at} 登记',
    'clue.back': '← 返回线索', 'clue.history': '主体历史', 'clue.first': '首次违规，可考虑从轻', 'clue.repeat': '此前已有 {n} 条线索',
    'clue.evidence': '证据', 'clue.readings': '触发前后读数', 'clue.audit': '审计记录', 'clue.occurrences': '发生记录',
    'clue.detail': '详情', 'clue.noreadings': '没有读数证据',
    'act.claim': '认领', 'act.assign': '指派', 'act.transfer': '移交', 'act.resolve': '处置完成', 'act.dismiss': '驳回',
    'act.comment': '评论', 'act.close': '关闭', 'act.reopen': '重开',
    'act.note': '说明 / 原因', 'act.to': '指派给（如 ann#3）', 'act.dept': '移交部门',
    'act.need_reason': '请填写原因', 'act.done': '已完成：{a}', 'act.failed': '操作失败：{e}',
    'audit.created': '创建', 'audit.occurrence': '再次发生', 'audit.cleared': '已恢复（待确认）', 'audit.supervision': '督办',
    'audit.level_raised': '等级上调', 'audit.recovered': '已恢复（自动办结）',
    'dev.title': '设备', 'dev.presence': '状态', 'dev.online': '在线', 'dev.offline': '离线', 'dev.silent': '失联',
    'dev.lastseen': '最后上报', 'dev.battery': '电量', 'dev.messages': '消息数', 'dev.lost': '丢失',
    'dev.charts': '近期读数', 'dev.pumpouts': '清掏 / 液位骤降记录', 'dev.nopump': '暂无记录', 'dev.fill': '隔油池液位',
    'dev.nodata': '暂无读数', 'dev.back': '← 返回设备', 'dev.removed': '排出量 (L)', 'dev.event': '事件',
    'dev.record': '清掏登记', 'dev.explained': '有登记', 'dev.unexplained': '无登记', 'dev.records': '清掏登记记录',
    'dev.from': '开始', 'dev.to': '结束', 'dev.by': '登记人', 'dev.register': '登记清掏', 'dev.note_hint': '清运单位 / 联单号',
    'reg.title': '设备档案', 'reg.none': '未登记', 'reg.kind': '类型', 'reg.name': '名称', 'reg.shop': '商户',
    'reg.owner': '责任人', 'reg.location': '位置', 'reg.trap': '隔油池', 'reg.zones': '区域', 'reg.notes': '安装备注',
    'reg.depth': '有效深度', 'reg.sensor': '探头高度', 'reg.reports': '上报',
    'reg.shape.rectangular': '矩形', 'reg.shape.cylindrical': '圆柱形',
    'reg.kind.grease_trap': '隔油池液位计', 'reg.kind.manhole_cover': '井盖传感器', 'reg.kind.kitchen_camera': '明厨亮灶摄像头',
    'reg.kind.parking_camera': '停车摄像头', 'reg.kind.other': '其他',
    'cam.title': '摄像头墙', 'cam.ok': '正常', 'cam.noframe': '暂无画面', 'cam.empty': '暂无摄像头',
    'cam.fault.camera.black': '黑屏', 'cam.fault.camera.overexposed': '过曝', 'cam.fault.camera.frozen': '画面冻结',
    'cam.fault.camera.covered': '遮挡/模糊', 'cam.fault.camera.sky': '朝天', 'cam.fault.camera.moved': '被移动',
    'cam.fault.camera.offline': '离线', 'cam.fault.camera.image_bad': '图像异常',
    'cam.src.snapshot': '网关拉取（快照）', 'cam.src.rtsp': '网关拉取（RTSP）', 'cam.src.ok': '取流正常',
    'cam.src.failing': '取流失败', 'cam.src.starting': '连接中', 'cam.src.frames': '帧数', 'cam.src.errors': '错误',
    'cam.src.reconnects': '重连', 'cam.src.lasterror': '最近错误',
    'fl.title': '无人机航飞', 'fl.na': '航飞功能在此网关上不可用', 'fl.upload': '上传素材', 'fl.progress': '上传进度',
    'fl.processing': '处理进度', 'fl.findings': '发现', 'fl.tasks': '任务区域', 'fl.map': '任务区域与发现（离线地图）',
    'fl.none': '暂无航飞', 'fl.status': '状态', 'fl.class': '类别', 'fl.conf': '置信度', 'fl.task': '任务', 'fl.time': '时间',
    'fl.pertask': '各任务结果',
    'st.title': '量化评估', 'st.total': '线索总数', 'st.disposal': '处置率', 'st.claim': '认领用时中位数',
    'st.resolve': '处置用时中位数', 'st.overdue': '超期（黄/红）', 'st.bylevel': '按等级', 'st.bydept': '按部门',
    'st.byweek': '按周', 'st.parking': '违停劝离成功率', 'st.persuasions': '劝离提醒', 'st.persuaded': '劝离后离开',
    'st.created': '新增', 'st.disposed': '已处置', 'st.minutes': '分钟', 'st.rate': '处置率',
    'st.claim_min': '认领用时(分)', 'st.resolve_min': '处置用时(分)', 'st.nodata': '暂无数据',
    'm.title': '执法事项', 'm.version': '裁量基准版本 {v}', 'm.violated': '违反条款', 'm.penalty': '处罚依据',
    'm.placeholder': '待执法部门填写', 'm.facts': '记录的事实', 'm.f.level': '等级', 'm.f.occ': '发生次数',
    'm.f.prior': '回溯期内此前同类线索', 'm.f.seen': '持续', 'm.f.corrected': '已恢复（{d} 后）', 'm.f.not_corrected': '未报告恢复',
    'm.f.answered': '当事人已陈述', 'm.f.not_answered': '无当事人陈述', 'm.band': '裁量档次', 'm.range_h': '罚款幅度',
    'm.why': '依据记录的理由', 'm.range': '{min}–{max} {cur}', 'm.applies': '事实指向此档',
    'm.noband': '记录的事实不符合任何档次：请按查明的事实认定', 'm.leniency': '不予处罚 / 从轻处罚清单',
    'm.noleniency': '此事项没有不罚或从轻情形', 'm.st.met': '符合', 'm.st.not_met': '不符合', 'm.st.to_establish': '待认定',
    'm.eff.no_penalty': '不予处罚', 'm.eff.light_penalty': '从轻处罚', 'm.basis': '依据', 'm.needs': '须由执法人员认定',
    'm.advice': '以上是依据记录事实给出的参考，由执法人员作出决定。', 'm.nomatter': '此类线索不对应执法事项目录中的事项（故障或提醒），无需作出处罚决定',
    'd.title': '作出决定', 'd.when': '认领、指派或处置后方可作出决定', 'd.band': '档次', 'd.penalty': '罚款（{cur}）',
    'd.leniency': '适用情形', 'd.basis': '决定依据（查明的事实与认定）', 'd.need_basis': '请填写决定依据',
    'd.need_penalty': '罚款须为不小于 0 的整数', 'd.outside': '罚款不在所选档次 {min}–{max} {cur} 内，且未适用允许的情形：将产生督办预警',
    'd.outside_short': '超出档次', 'd.latest': '最近决定', 'd.by_the_book': '决定符合裁量基准',
    'act.decide': '作出决定', 'audit.decide': '处罚决定', 'role.auditor': '审计监督',
    'st.decisions': '处罚决定（按事项与档次）', 'st.decisions_total': '共 {n} 项决定，{o} 项超出档次 · 裁量基准 {v}',
    'st.matter': '事项', 'st.band': '档次', 'st.count': '决定数', 'st.outside': '超出档次', 'st.differs': '档次与事实不符',
    'st.nopen': '不予处罚', 'st.penalty': '罚款 最小/中位/最大', 'st.lenapplied': '适用情形',
    'err.load': '加载失败：{e}', 'err.forbidden': '无权限', 'none': '无',
    'nav.oversight': '督办', 'sv.title': '督办：预警与督办通知',
    'sv.help': '红色在前，其次黄色。督办员把预警转为督办通知（责任单位、期限）；责任单位签收并报告整改；督办员验收办结、退回或提级。每一步都记入审计链。',
    'sv.warnings': '监督预警', 'sv.notices': '督办通知', 'sv.model': '模型', 'sv.clue': '线索', 'sv.message': '内容',
    'sv.updated': '更新', 'sv.nowarnings': '暂无预警', 'sv.nonotices': '暂无督办通知', 'sv.unit': '责任单位',
    'sv.about': '事由', 'sv.unit_hint': '责任单位（如 county:xihu/urban-management）', 'sv.days': '期限（天）',
    'sv.note': '说明', 'sv.need_unit': '请填写责任单位', 'sv.issue': '发督办通知', 'sv.statement': '整改说明',
    'sv.escalated_to': '已提级至', 'sv.text_hint': '说明 / 整改情况 / 上级单位', 'sv.ack': '签收',
    'sv.fixed': '报告已整改', 'sv.close': '验收办结', 'sv.reopen': '退回重办', 'sv.escalate': '提级督办',
    'sv.st.issued': '已下发', 'sv.st.acknowledged': '已签收', 'sv.st.fixed': '已报整改', 'sv.st.closed': '已办结', 'sv.has_notice': '已发督办通知 #{n}',
  },
  en: {
    'app.title': 'Enforcement clues', 'nav.clues': 'Clues', 'nav.devices': 'Devices', 'nav.cameras': 'Cameras',
    'nav.flights': 'Flights', 'nav.stats': 'Statistics', signout: 'Sign out',
    'signin.title': 'Sign in', 'signin.token': 'Access token', 'signin.go': 'Sign in',
    'signin.help': 'Paste the token your administrator gave you (gateway token create). It is kept in this tab only.',
    'signin.bad': 'The token is invalid or revoked', 'signin.forbidden': 'This token\'s role may not read clues',
    'live.on': 'live', 'live.off': 'offline',
    'role.inspector': 'inspector', 'role.supervisor': 'supervisor', 'role.platform': 'platform', 'role.admin': 'admin',
    'role.device': 'device', 'role.drone_operator': 'drone operator', 'all.sites': 'all sites',
    'f.level': 'Level', 'f.status': 'Status', 'f.kind': 'Kind', 'f.site': 'Site', 'f.department': 'Department',
    'f.overdue': 'Overdue only', 'f.any': 'any', 'f.open': 'open',
    'level.high': 'high', 'level.medium': 'medium', 'level.low': 'low',
    'status.new': 'new', 'status.claimed': 'claimed', 'status.assigned': 'assigned', 'status.transferred': 'transferred',
    'status.resolved': 'resolved', 'status.dismissed': 'dismissed', 'status.closed': 'closed', 'status.reopened': 'reopened',
    'esc.yellow': 'yellow (overdue)', 'esc.red': 'red (overdue)',
    'col.id': 'ID', 'col.level': 'Level', 'col.title': 'Clue', 'col.site': 'Site', 'col.status': 'Status',
    'col.dept': 'Department', 'col.assignee': 'Assignee', 'col.occ': 'Count', 'col.last': 'Last seen', 'col.deadline': 'Deadline',
    'clues.empty': 'No clue matches', 'clues.count': '{n} clues',
    'clue.pumpouts': 'Registered pump-outs', 'clue.pumpout': 'pump-out {from} → {to} · registered by {by} at {at}',
    'clue.back': '← Back to clues', 'clue.history': 'Subject history', 'clue.first': 'First violation: leniency may apply', 'clue.repeat': '{n} earlier clues',
    'clue.evidence': 'Evidence', 'clue.readings': 'Readings around the trigger', 'clue.audit': 'Audit trail', 'clue.occurrences': 'Occurrences',
    'clue.detail': 'Detail', 'clue.noreadings': 'No readings evidence',
    'act.claim': 'Claim', 'act.assign': 'Assign', 'act.transfer': 'Transfer', 'act.resolve': 'Resolve', 'act.dismiss': 'Dismiss',
    'act.comment': 'Comment', 'act.close': 'Close', 'act.reopen': 'Reopen',
    'act.note': 'Note / reason', 'act.to': 'Assign to (e.g. ann#3)', 'act.dept': 'Department',
    'act.need_reason': 'A reason is required', 'act.done': 'Done: {a}', 'act.failed': 'Failed: {e}',
    'audit.created': 'created', 'audit.occurrence': 'occurred again', 'audit.cleared': 'recovered, to confirm', 'audit.supervision': 'supervision',
    'audit.level_raised': 'level raised', 'audit.recovered': 'recovered, resolved automatically',
    'dev.title': 'Devices', 'dev.presence': 'Status', 'dev.online': 'online', 'dev.offline': 'offline', 'dev.silent': 'silent',
    'dev.lastseen': 'Last seen', 'dev.battery': 'Battery', 'dev.messages': 'Messages', 'dev.lost': 'Lost',
    'dev.charts': 'Recent readings', 'dev.pumpouts': 'Pump-outs / level drops', 'dev.nopump': 'None recorded', 'dev.fill': 'Trap fill',
    'dev.nodata': 'No readings yet', 'dev.back': '← Back to devices', 'dev.removed': 'Removed (L)', 'dev.event': 'Event',
    'dev.record': 'Service record', 'dev.explained': 'recorded', 'dev.unexplained': 'not recorded', 'dev.records': 'Registered pump-outs',
    'dev.from': 'From', 'dev.to': 'To', 'dev.by': 'By', 'dev.register': 'Register pump-out', 'dev.note_hint': 'Contractor / manifest no.',
    'reg.title': 'Registry', 'reg.none': 'not registered', 'reg.kind': 'Kind', 'reg.name': 'Name', 'reg.shop': 'Shop',
    'reg.owner': 'Owner', 'reg.location': 'Location', 'reg.trap': 'Trap', 'reg.zones': 'Zones', 'reg.notes': 'Installation notes',
    'reg.depth': 'working depth', 'reg.sensor': 'sensor at', 'reg.reports': 'reports',
    'reg.shape.rectangular': 'rectangular', 'reg.shape.cylindrical': 'cylindrical',
    'reg.kind.grease_trap': 'grease-trap level sensor', 'reg.kind.manhole_cover': 'manhole-cover sensor', 'reg.kind.kitchen_camera': 'kitchen camera',
    'reg.kind.parking_camera': 'parking camera', 'reg.kind.other': 'other',
    'cam.title': 'Camera wall', 'cam.ok': 'healthy', 'cam.noframe': 'no frame yet', 'cam.empty': 'No cameras yet',
    'cam.fault.camera.black': 'black', 'cam.fault.camera.overexposed': 'over-exposed', 'cam.fault.camera.frozen': 'frozen',
    'cam.fault.camera.covered': 'covered/blurred', 'cam.fault.camera.sky': 'pointed at sky', 'cam.fault.camera.moved': 'moved',
    'cam.fault.camera.offline': 'offline', 'cam.fault.camera.image_bad': 'bad image',
    'cam.src.snapshot': 'pulled (snapshot)', 'cam.src.rtsp': 'pulled (RTSP)', 'cam.src.ok': 'source ok',
    'cam.src.failing': 'source failing', 'cam.src.starting': 'connecting', 'cam.src.frames': 'frames', 'cam.src.errors': 'errors',
    'cam.src.reconnects': 'reconnects', 'cam.src.lasterror': 'last error',
    'fl.title': 'Drone flights', 'fl.na': 'Flights are not available on this gateway', 'fl.upload': 'Upload footage', 'fl.progress': 'Upload',
    'fl.processing': 'Processing', 'fl.findings': 'Findings', 'fl.tasks': 'Task areas', 'fl.map': 'Task areas and findings (offline map)',
    'fl.none': 'No flights yet', 'fl.status': 'Status', 'fl.class': 'Class', 'fl.conf': 'Confidence', 'fl.task': 'Task', 'fl.time': 'Time',
    'fl.pertask': 'Results per task',
    'st.title': 'Quantified evaluation', 'st.total': 'Clues', 'st.disposal': 'Disposal rate', 'st.claim': 'Median time to claim',
    'st.resolve': 'Median time to resolve', 'st.overdue': 'Overdue (yellow/red)', 'st.bylevel': 'By level', 'st.bydept': 'By department',
    'st.byweek': 'By week', 'st.parking': 'Parking persuasion success', 'st.persuasions': 'Please-move notices', 'st.persuaded': 'Left after notice',
    'st.created': 'created', 'st.disposed': 'disposed', 'st.minutes': 'min', 'st.rate': 'disposal rate',
    'st.claim_min': 'to claim (min)', 'st.resolve_min': 'to resolve (min)', 'st.nodata': 'No data yet',
    'm.title': 'Enforcement matter', 'm.version': 'discretion standard {v}', 'm.violated': 'Provision violated', 'm.penalty': 'Penalty provision',
    'm.placeholder': 'to be filled in by the bureau', 'm.facts': 'Facts on record', 'm.f.level': 'level', 'm.f.occ': 'occurrences',
    'm.f.prior': 'earlier clues of this kind', 'm.f.seen': 'seen for', 'm.f.corrected': 'corrected after {d}', 'm.f.not_corrected': 'not reported over',
    'm.f.answered': 'owner answered', 'm.f.not_answered': 'no statement of the owner', 'm.band': 'Band', 'm.range_h': 'Penalty range',
    'm.why': 'Why, from the record', 'm.range': '{min}–{max} {cur}', 'm.applies': 'the facts point here',
    'm.noband': 'No band\'s facts hold on the record: decide on the facts found', 'm.leniency': 'No-penalty / light-penalty list',
    'm.noleniency': 'This matter has no leniency entries', 'm.st.met': 'met', 'm.st.not_met': 'not met', 'm.st.to_establish': 'to establish',
    'm.eff.no_penalty': 'no penalty', 'm.eff.light_penalty': 'lighter penalty', 'm.basis': 'Basis', 'm.needs': 'A person must establish',
    'm.advice': 'Advice from the recorded facts: people decide.', 'm.nomatter': 'This kind belongs to no matter of the catalogue (a fault or a reminder): nothing to decide',
    'd.title': 'Decide', 'd.when': 'A decision needs the clue claimed, assigned or resolved', 'd.band': 'Band', 'd.penalty': 'Penalty ({cur})',
    'd.leniency': 'Leniency applied', 'd.basis': 'Basis (facts and findings)', 'd.need_basis': 'A basis is required',
    'd.need_penalty': 'The penalty must be a whole number of at least 0', 'd.outside': 'The penalty is outside the band {min}–{max} {cur} and no applied entry allows it: an oversight warning will be raised',
    'd.outside_short': 'outside the band', 'd.latest': 'Latest decision', 'd.by_the_book': 'within the discretion standard',
    'act.decide': 'Decide', 'audit.decide': 'decision', 'role.auditor': 'auditor',
    'st.decisions': 'Decisions by matter and band', 'st.decisions_total': '{n} decisions, {o} outside their band · standard {v}',
    'st.matter': 'Matter', 'st.band': 'Band', 'st.count': 'Decisions', 'st.outside': 'Outside band', 'st.differs': 'Band unlike facts',
    'st.nopen': 'No penalty', 'st.penalty': 'Penalty min / median / max', 'st.lenapplied': 'Leniency applied',
    'err.load': 'Could not load: {e}', 'err.forbidden': 'Not allowed', 'none': 'none',
    'nav.oversight': 'Supervision', 'sv.title': 'Supervision: warnings and notices',
    'sv.help': 'Red first, then yellow. Supervisors turn a warning into a notice to a unit with a deadline; the unit acknowledges and reports the fix; supervisors close, reopen or escalate. Every step is on the audit chain.',
    'sv.warnings': 'Oversight warnings', 'sv.notices': 'Supervision notices', 'sv.model': 'Model', 'sv.clue': 'Clue', 'sv.message': 'Message',
    'sv.updated': 'Updated', 'sv.nowarnings': 'No warnings', 'sv.nonotices': 'No supervision notices', 'sv.unit': 'Unit',
    'sv.about': 'About', 'sv.unit_hint': 'Unit (e.g. county:xihu/urban-management)', 'sv.days': 'Due in (days)',
    'sv.note': 'Note', 'sv.need_unit': 'Name the unit', 'sv.issue': 'Issue notice', 'sv.statement': 'Fix statement',
    'sv.escalated_to': 'Escalated to', 'sv.text_hint': 'Note / fix statement / higher unit', 'sv.ack': 'Acknowledge',
    'sv.fixed': 'Report fixed', 'sv.close': 'Close', 'sv.reopen': 'Reopen', 'sv.escalate': 'Escalate',
    'sv.st.issued': 'issued', 'sv.st.acknowledged': 'acknowledged', 'sv.st.fixed': 'reported fixed', 'sv.st.closed': 'closed', 'sv.has_notice': 'notice #{n} issued',
  },
};

// (Guarded so the unit tests can import this module under node, which has no localStorage.)
const store = globalThis.localStorage;
let lang = store?.getItem('lang') === 'en' ? 'en' : 'zh';

export function getLang() { return lang; }

export function setLang(l) {
  lang = l === 'en' ? 'en' : 'zh';
  store?.setItem('lang', lang);
  if (globalThis.document) document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
}

/** The text for `key` in the current language, `{name}` replaced from `vars`; the key itself when unknown. */
export function t(key, vars = {}) {
  const s = dict[lang][key] ?? dict.zh[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

/** Fills every `[data-i18n]` element under `root`. */
export function translate(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  document.title = t('app.title');
}

export function fmtTime(ms) {
  if (ms == null) return '–';
  return new Date(ms).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-GB', { hour12: false });
}

export function fmtDuration(s) {
  if (s == null) return '–';
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
