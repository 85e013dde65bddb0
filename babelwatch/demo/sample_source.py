"""Hand-written multilingual sample stream for the babelwatch demo.

The texts below are realistic (but fictional) financial headlines and social posts, written
natively in English, Chinese (simplified), Japanese, Spanish, French and German, plus a few in
Italian and Portuguese. ``main()`` turns them into ``sample_events.jsonl``: one raw Kafka payload
per line, deterministic (fixed seed, stable order, byte-identical on every run).

Layout of the generated file:

* regular events on all six topics, spread evenly over the file so each topic keeps a steady rate;
* a contiguous BURST block (about 80 events, all topic "TSLA", mostly negative, ``meta.burst``
  true) placed after roughly the first 60 % of the lines, which the replayer sends back-to-back;
* a few INVALID lines (ids starting with ``bad-``) scattered over the regular part, for the
  dead-letter path.

Events carry no ``ts``: the replayer stamps event time when it sends them. ``lang`` is present on
about half of the events of each language; the others must be detected. Every valid event has
``meta.expected`` (intended sentiment label) and ``meta.true_lang`` (true language).

Run from the repository root::

    python -m babelwatch.demo.sample_source [OUTPUT_PATH]
"""
from __future__ import annotations

import base64
import json
import random
import struct
import sys
import zlib
from pathlib import Path
from fusion_model.corpora import SAMPLE_EVENTS

SEED = 20240611
DEFAULT_OUTPUT = SAMPLE_EVENTS

TOPICS: tuple[str, ...] = ("AAPL", "TSLA", "NVDA", "BTC", "Airbus", "Toyota")
BURST_TOPIC = "TSLA"
BURST_AT = 0.6  # the burst block starts after this fraction of the file's lines
N_IMAGES_REGULAR = 21
N_IMAGES_BURST = 4
IMAGE_SIZE = 32
MAX_IMAGE_B64 = 4096

# --------------------------------------------------------------------------------------------
# Regular (non-burst) texts. Per language: 6 topics x (2 positive, 2 negative, 2 neutral),
# plus 2 extra positive and 2 extra neutral so that, with the mostly negative burst added,
# each language stays roughly a third per label.
# --------------------------------------------------------------------------------------------

_EN: list[dict] = [
    {"topic": "AAPL", "source": "news", "expected": "positive", "text": "Apple beats estimates on record iPhone sales in China, shares jump 4% after hours"},
    {"topic": "AAPL", "source": "news", "expected": "negative", "text": "Apple shares slide as EU hits company with €1.8 billion antitrust fine"},
    {"topic": "AAPL", "source": "news", "expected": "neutral", "text": "Apple to report fiscal second-quarter results on Thursday after the bell"},
    {"topic": "AAPL", "source": "social", "expected": "positive", "text": "$AAPL services revenue at an all-time high again. This machine just keeps printing money 🍏📈"},
    {"topic": "AAPL", "source": "social", "expected": "negative", "text": "Sold my $AAPL today. Vision Pro demand is dead and iPhone upgrades look weak. Not feeling it."},
    {"topic": "AAPL", "source": "social", "expected": "neutral", "text": "Anyone know what time the Apple event starts tomorrow? Trying to plan around the $AAPL open."},
    {"topic": "AAPL", "source": "news", "expected": "neutral", "text": "Apple to hold its annual developers conference WWDC from June 10 to 14"},
    {"topic": "TSLA", "source": "news", "expected": "positive", "text": "Tesla deliveries top forecasts as Model Y demand rebounds; stock rallies 7%"},
    {"topic": "TSLA", "source": "news", "expected": "negative", "text": "Tesla cuts prices again in China as margins hit five-year low"},
    {"topic": "TSLA", "source": "news", "expected": "neutral", "text": "Tesla annual shareholder meeting scheduled for June 13 in Austin"},
    {"topic": "TSLA", "source": "social", "expected": "positive", "text": "FSD v12 drove me door to door with zero interventions. $TSLA bulls are going to eat 🚀"},
    {"topic": "TSLA", "source": "social", "expected": "negative", "text": "$TSLA guidance was a joke. No new model till 2026, margins crushed, and Elon posting all day. I'm out."},
    {"topic": "TSLA", "source": "social", "expected": "neutral", "text": "Tesla Q3 delivery numbers drop Monday morning. What's everyone's estimate? $TSLA"},
    {"topic": "NVDA", "source": "news", "expected": "positive", "text": "Nvidia smashes revenue forecast on AI chip demand, shares hit record high"},
    {"topic": "NVDA", "source": "news", "expected": "negative", "text": "Nvidia falls 9% as U.S. tightens export curbs on AI chips to China"},
    {"topic": "NVDA", "source": "news", "expected": "neutral", "text": "Nvidia CEO Jensen Huang to deliver keynote at Computex in Taipei next week"},
    {"topic": "NVDA", "source": "social", "expected": "positive", "text": "Data center revenue up 400% YoY. $NVDA is the picks-and-shovels play of the decade, still holding every share"},
    {"topic": "NVDA", "source": "social", "expected": "negative", "text": "$NVDA down 6% premarket on a guidance miss. Told you all it was priced for perfection 📉"},
    {"topic": "NVDA", "source": "social", "expected": "neutral", "text": "Watching the $NVDA earnings call tonight at 5pm ET, will post notes in this thread."},
    {"topic": "BTC", "source": "news", "expected": "positive", "text": "Bitcoin surges past $70,000 as spot ETF inflows hit record"},
    {"topic": "BTC", "source": "news", "expected": "negative", "text": "Bitcoin tumbles 12% after major exchange halts withdrawals"},
    {"topic": "BTC", "source": "news", "expected": "neutral", "text": "Bitcoin halving expected next week as block reward drops to 3.125 BTC"},
    {"topic": "BTC", "source": "social", "expected": "positive", "text": "Just stacked more sats. #Bitcoin breaking out of the range, next stop ATH 🟠"},
    {"topic": "BTC", "source": "social", "expected": "negative", "text": "Liquidated again. This $BTC dump wiped out my entire long. Crypto is rigged."},
    {"topic": "BTC", "source": "social", "expected": "neutral", "text": "Reminder: CME bitcoin futures close early on Friday for the holiday."},
    {"topic": "BTC", "source": "social", "expected": "positive", "text": "Bitcoin just printed a new all-time high. Four years of HODLing finally paying off 🙌"},
    {"topic": "Airbus", "source": "news", "expected": "positive", "text": "Airbus wins record 500-jet order from IndiGo, shares climb"},
    {"topic": "Airbus", "source": "news", "expected": "negative", "text": "Airbus cuts delivery target as engine shortages stall A320neo output"},
    {"topic": "Airbus", "source": "news", "expected": "neutral", "text": "Airbus to publish first-half results on July 31"},
    {"topic": "Airbus", "source": "social", "expected": "positive", "text": "Airbus order book is insane right now. A backlog of 8,000+ jets means years of cash flow. Long $EADSY"},
    {"topic": "Airbus", "source": "social", "expected": "negative", "text": "Another A321 delivery delay from Airbus. Airlines are furious and honestly so am I as a shareholder."},
    {"topic": "Airbus", "source": "social", "expected": "neutral", "text": "Heading to the Paris Air Show next week, curious which Airbus orders get announced."},
    {"topic": "Airbus", "source": "news", "expected": "neutral", "text": "Airbus appoints new head of commercial aircraft division, effective January 1"},
    {"topic": "Toyota", "source": "news", "expected": "positive", "text": "Toyota posts record annual profit on hybrid boom and weak yen"},
    {"topic": "Toyota", "source": "news", "expected": "negative", "text": "Toyota suspends shipments of several models over certification scandal"},
    {"topic": "Toyota", "source": "news", "expected": "neutral", "text": "Toyota president to hold press conference on EV strategy Tuesday"},
    {"topic": "Toyota", "source": "social", "expected": "positive", "text": "Toyota was right about hybrids all along. Prius and RAV4 hybrid waitlists everywhere 👏 $TM"},
    {"topic": "Toyota", "source": "social", "expected": "negative", "text": "Toyota's safety test cheating mess is embarrassing. Thought they were better than this. $TM"},
    {"topic": "Toyota", "source": "social", "expected": "neutral", "text": "Does anyone know if the new Land Cruiser ships to Europe this year? Dealer says 'ask Toyota'."},
    {"topic": "Toyota", "source": "news", "expected": "positive", "text": "Toyota raises full-year outlook as hybrid sales hit record in North America"},
]

_ZH: list[dict] = [
    {"topic": "AAPL", "source": "news", "expected": "positive", "text": "苹果大中华区营收超预期，iPhone销量回暖，盘后股价涨超4%"},
    {"topic": "AAPL", "source": "news", "expected": "negative", "text": "苹果遭欧盟18亿欧元反垄断罚款，股价应声下跌"},
    {"topic": "AAPL", "source": "news", "expected": "neutral", "text": "苹果公司将于本周四美股盘后公布第二财季业绩"},
    {"topic": "AAPL", "source": "social", "expected": "positive", "text": "苹果这次财报太稳了，服务收入又创新高，继续拿着不动 🍎"},
    {"topic": "AAPL", "source": "social", "expected": "negative", "text": "iPhone降价都卖不动了，苹果是真的没有创新了，清仓走人"},
    {"topic": "AAPL", "source": "social", "expected": "neutral", "text": "有人知道苹果发布会北京时间几点开始吗？"},
    {"topic": "AAPL", "source": "news", "expected": "neutral", "text": "苹果全球开发者大会WWDC将于6月10日至14日举行"},
    {"topic": "TSLA", "source": "news", "expected": "positive", "text": "特斯拉二季度交付量超市场预期，股价大涨7%"},
    {"topic": "TSLA", "source": "news", "expected": "negative", "text": "特斯拉中国再度降价，毛利率跌至五年来最低"},
    {"topic": "TSLA", "source": "news", "expected": "neutral", "text": "特斯拉上海超级工厂将于下月举办开放日活动"},
    {"topic": "TSLA", "source": "social", "expected": "positive", "text": "今天试驾了FSD，全程零接管，特斯拉这波真的稳了🚀"},
    {"topic": "TSLA", "source": "social", "expected": "negative", "text": "特斯拉财报一塌糊涂，新车型还要等到2026年，割肉了"},
    {"topic": "TSLA", "source": "social", "expected": "neutral", "text": "特斯拉周一公布交付数据，大家预期多少？"},
    {"topic": "NVDA", "source": "news", "expected": "positive", "text": "英伟达营收大超预期，AI芯片需求强劲，股价创历史新高"},
    {"topic": "NVDA", "source": "news", "expected": "negative", "text": "美国收紧对华AI芯片出口管制，英伟达股价重挫9%"},
    {"topic": "NVDA", "source": "news", "expected": "neutral", "text": "英伟达CEO黄仁勋将在台北国际电脑展发表主题演讲"},
    {"topic": "NVDA", "source": "social", "expected": "positive", "text": "老黄yyds！数据中心收入同比暴增，英伟达还能再涨"},
    {"topic": "NVDA", "source": "social", "expected": "negative", "text": "英伟达指引不及预期，盘前跌了6%，估值泡沫终于要破了"},
    {"topic": "NVDA", "source": "social", "expected": "neutral", "text": "今晚英伟达财报电话会，有没有一起蹲的？"},
    {"topic": "BTC", "source": "news", "expected": "positive", "text": "比特币突破7万美元，现货ETF资金净流入创纪录"},
    {"topic": "BTC", "source": "news", "expected": "negative", "text": "某大型交易所暂停提币，比特币暴跌12%"},
    {"topic": "BTC", "source": "news", "expected": "neutral", "text": "比特币第四次减半预计下周完成，区块奖励降至3.125枚"},
    {"topic": "BTC", "source": "social", "expected": "positive", "text": "大饼终于突破了，牛市来了，继续囤币🟠"},
    {"topic": "BTC", "source": "social", "expected": "negative", "text": "又爆仓了，这波插针把我的多单全打没了，币圈太黑了"},
    {"topic": "BTC", "source": "social", "expected": "neutral", "text": "请问现在用什么App看比特币实时行情比较方便？"},
    {"topic": "BTC", "source": "social", "expected": "positive", "text": "比特币又创历史新高了！拿了四年终于熬出头了🙌"},
    {"topic": "Airbus", "source": "news", "expected": "positive", "text": "空客获印度靛蓝航空500架飞机创纪录订单，股价走高"},
    {"topic": "Airbus", "source": "news", "expected": "negative", "text": "发动机供应短缺拖累A320neo生产，空客下调年度交付目标"},
    {"topic": "Airbus", "source": "news", "expected": "neutral", "text": "空客天津第二条总装线预计明年投产"},
    {"topic": "Airbus", "source": "social", "expected": "positive", "text": "空客的订单已经排到十年后了，这基本面没得说"},
    {"topic": "Airbus", "source": "social", "expected": "negative", "text": "空客又推迟交付，航空公司都等疯了，股东也坐不住了"},
    {"topic": "Airbus", "source": "social", "expected": "neutral", "text": "下周巴黎航展，有人关注空客会公布哪些订单吗？"},
    {"topic": "Airbus", "source": "news", "expected": "neutral", "text": "空客任命新的商用飞机业务负责人，明年1月1日起生效"},
    {"topic": "Toyota", "source": "news", "expected": "positive", "text": "丰田年度利润创历史新高，混合动力车型销量大增"},
    {"topic": "Toyota", "source": "news", "expected": "negative", "text": "丰田因认证造假丑闻暂停多款车型出货"},
    {"topic": "Toyota", "source": "news", "expected": "neutral", "text": "丰田社长将于周二召开发布会介绍电动化战略"},
    {"topic": "Toyota", "source": "social", "expected": "positive", "text": "还是丰田的混动靠谱，油耗低又耐用，订车都要排三个月"},
    {"topic": "Toyota", "source": "social", "expected": "negative", "text": "丰田认证造假太让人失望了，以后买车得再考虑考虑"},
    {"topic": "Toyota", "source": "social", "expected": "neutral", "text": "新款汉兰达什么时候上市？有人知道吗"},
    {"topic": "Toyota", "source": "news", "expected": "positive", "text": "丰田上调全年业绩预期，北美混动车销量创新高"},
]

_JA: list[dict] = [
    {"topic": "AAPL", "source": "news", "expected": "positive", "text": "アップル、中国でのiPhone販売が予想上回る　時間外で株価4%高"},
    {"topic": "AAPL", "source": "news", "expected": "negative", "text": "アップル株が下落、EUが18億ユーロの制裁金"},
    {"topic": "AAPL", "source": "news", "expected": "neutral", "text": "アップル、木曜の米市場引け後に4〜6月期決算を発表へ"},
    {"topic": "AAPL", "source": "social", "expected": "positive", "text": "アップルの決算強すぎる。サービス部門また過去最高で安心してホールドできる🍎"},
    {"topic": "AAPL", "source": "social", "expected": "negative", "text": "iPhoneの売れ行きがひどい。アップル株、そろそろ見切りつけるかな…"},
    {"topic": "AAPL", "source": "social", "expected": "neutral", "text": "アップルのイベントって日本時間だと何時から？"},
    {"topic": "AAPL", "source": "news", "expected": "neutral", "text": "アップル、開発者会議WWDCを6月10日から14日まで開催"},
    {"topic": "TSLA", "source": "news", "expected": "positive", "text": "テスラ、納車台数が市場予想を上回る　株価は7%上昇"},
    {"topic": "TSLA", "source": "news", "expected": "negative", "text": "テスラ、中国で再値下げ　利益率は5年ぶり低水準に"},
    {"topic": "TSLA", "source": "news", "expected": "neutral", "text": "テスラ、6月13日にテキサス州で年次株主総会を開催"},
    {"topic": "TSLA", "source": "social", "expected": "positive", "text": "FSD試したけど介入ゼロで家まで帰ってきた。テスラ株は握力強めでいく🚀"},
    {"topic": "TSLA", "source": "social", "expected": "negative", "text": "テスラの決算ひどすぎ。新型車は2026年まで出ないって、さすがに損切りした"},
    {"topic": "TSLA", "source": "social", "expected": "neutral", "text": "テスラの納車台数、月曜発表らしい。みんな予想どのくらい？"},
    {"topic": "NVDA", "source": "news", "expected": "positive", "text": "エヌビディア、売上高が予想を大幅に上回る　AI向け半導体が好調で最高値更新"},
    {"topic": "NVDA", "source": "news", "expected": "negative", "text": "エヌビディア株9%安　米政府が対中AI半導体の輸出規制を強化"},
    {"topic": "NVDA", "source": "news", "expected": "neutral", "text": "エヌビディアのフアンCEO、来週台北で基調講演へ"},
    {"topic": "NVDA", "source": "social", "expected": "positive", "text": "エヌビディアのデータセンター売上えぐい。新NISAで買っといて本当によかった"},
    {"topic": "NVDA", "source": "social", "expected": "negative", "text": "エヌビディアのガイダンス期待外れで時間外6%下落。さすがに買われすぎだったか📉"},
    {"topic": "NVDA", "source": "social", "expected": "neutral", "text": "今夜のエヌビディア決算、日本時間だと何時に出るんだっけ？"},
    {"topic": "BTC", "source": "news", "expected": "positive", "text": "ビットコイン、7万ドル突破　現物ETFへの資金流入が過去最高"},
    {"topic": "BTC", "source": "news", "expected": "negative", "text": "ビットコイン12%急落　大手交換業者が出金を停止"},
    {"topic": "BTC", "source": "news", "expected": "neutral", "text": "ビットコイン半減期、来週にも到来へ　採掘報酬は3.125BTCに"},
    {"topic": "BTC", "source": "social", "expected": "positive", "text": "ビットコインついにレンジ上抜け！ガチホしててよかった🟠"},
    {"topic": "BTC", "source": "social", "expected": "negative", "text": "ビットコインの急落でロング全部ロスカットされた…もう仮想通貨やめたい"},
    {"topic": "BTC", "source": "social", "expected": "neutral", "text": "ビットコインの利益って雑所得扱いで合ってる？確定申告の準備中"},
    {"topic": "BTC", "source": "social", "expected": "positive", "text": "ビットコイン史上最高値更新きた！4年ガチホした甲斐があった🙌"},
    {"topic": "Airbus", "source": "news", "expected": "positive", "text": "エアバス、インドのインディゴから500機の過去最大受注"},
    {"topic": "Airbus", "source": "news", "expected": "negative", "text": "エアバス、エンジン不足で年間納入目標を下方修正"},
    {"topic": "Airbus", "source": "news", "expected": "neutral", "text": "エアバス、7月31日に上期決算を発表予定"},
    {"topic": "Airbus", "source": "social", "expected": "positive", "text": "エアバスの受注残8000機超えってすごいな。この先何年も安泰でしょ"},
    {"topic": "Airbus", "source": "social", "expected": "negative", "text": "エアバスの納入遅延またか。航空会社もたまったもんじゃないな"},
    {"topic": "Airbus", "source": "social", "expected": "neutral", "text": "来週のパリ航空ショー、エアバスがどんな発表するか気になる"},
    {"topic": "Airbus", "source": "news", "expected": "neutral", "text": "エアバス、民間機部門の新トップを任命　1月1日付"},
    {"topic": "Toyota", "source": "news", "expected": "positive", "text": "トヨタ、過去最高益を更新　ハイブリッド車好調と円安が追い風"},
    {"topic": "Toyota", "source": "news", "expected": "negative", "text": "トヨタ、認証不正で一部車種の出荷を停止"},
    {"topic": "Toyota", "source": "news", "expected": "neutral", "text": "トヨタ社長、火曜にEV戦略について記者会見へ"},
    {"topic": "Toyota", "source": "social", "expected": "positive", "text": "結局トヨタのハイブリッド戦略が正解だったな。RAV4の納車待ち半年とか人気すごい"},
    {"topic": "Toyota", "source": "social", "expected": "negative", "text": "トヨタの認証不正、正直がっかり。日本のものづくりの信頼が…"},
    {"topic": "Toyota", "source": "social", "expected": "neutral", "text": "トヨタの株主総会って今年はいつ？招集通知まだ見てない"},
    {"topic": "Toyota", "source": "news", "expected": "positive", "text": "トヨタ、通期業績予想を上方修正　北米でハイブリッド車の販売が過去最高"},
]

_ES: list[dict] = [
    {"topic": "AAPL", "source": "news", "expected": "positive", "text": "Apple supera las previsiones gracias a las ventas récord del iPhone y sus acciones se disparan un 4%"},
    {"topic": "AAPL", "source": "news", "expected": "negative", "text": "Las acciones de Apple caen tras la multa de 1.800 millones de euros de Bruselas"},
    {"topic": "AAPL", "source": "news", "expected": "neutral", "text": "Apple presentará sus resultados del segundo trimestre fiscal el jueves tras el cierre"},
    {"topic": "AAPL", "source": "social", "expected": "positive", "text": "Los servicios de Apple otra vez en máximos. Esta empresa imprime dinero 🍏 $AAPL"},
    {"topic": "AAPL", "source": "social", "expected": "negative", "text": "Hoy he vendido todas mis Apple. El iPhone ya no emociona a nadie y las Vision Pro no se venden."},
    {"topic": "AAPL", "source": "social", "expected": "neutral", "text": "¿Alguien sabe a qué hora empieza la keynote de Apple en hora peninsular?"},
    {"topic": "AAPL", "source": "news", "expected": "neutral", "text": "Apple celebrará su conferencia de desarrolladores WWDC del 10 al 14 de junio"},
    {"topic": "TSLA", "source": "news", "expected": "positive", "text": "Tesla supera las estimaciones de entregas y sus acciones suben un 7%"},
    {"topic": "TSLA", "source": "news", "expected": "negative", "text": "Tesla vuelve a bajar precios en China y sus márgenes tocan mínimos de cinco años"},
    {"topic": "TSLA", "source": "news", "expected": "neutral", "text": "Tesla celebrará su junta anual de accionistas el 13 de junio en Austin"},
    {"topic": "TSLA", "source": "social", "expected": "positive", "text": "Probé el FSD y me llevó a casa sin tocar el volante. Tesla va a volar 🚀"},
    {"topic": "TSLA", "source": "social", "expected": "negative", "text": "Los resultados de Tesla son un desastre. Márgenes por los suelos y ningún modelo nuevo hasta 2026. Me salgo."},
    {"topic": "TSLA", "source": "social", "expected": "neutral", "text": "Tesla publica las entregas el lunes. ¿Qué cifra esperáis?"},
    {"topic": "NVDA", "source": "news", "expected": "positive", "text": "Nvidia pulveriza las previsiones por la demanda de chips de IA y marca máximos históricos"},
    {"topic": "NVDA", "source": "news", "expected": "negative", "text": "Nvidia se desploma un 9% por las nuevas restricciones de EE. UU. a la exportación de chips a China"},
    {"topic": "NVDA", "source": "news", "expected": "neutral", "text": "El consejero delegado de Nvidia, Jensen Huang, pronunciará la conferencia inaugural de Computex"},
    {"topic": "NVDA", "source": "social", "expected": "positive", "text": "Lo de Nvidia es de otro planeta. Los ingresos de centros de datos se multiplican y yo sigo dentro 💪"},
    {"topic": "NVDA", "source": "social", "expected": "negative", "text": "Nvidia cae un 6% en preapertura por una guía decepcionante. Estaba carísima, era cuestión de tiempo 📉"},
    {"topic": "NVDA", "source": "social", "expected": "neutral", "text": "Esta noche hay resultados de Nvidia a las 22:00 hora peninsular. ¿Quién se apunta al directo?"},
    {"topic": "BTC", "source": "news", "expected": "positive", "text": "El bitcoin supera los 70.000 dólares impulsado por entradas récord en los ETF al contado"},
    {"topic": "BTC", "source": "news", "expected": "negative", "text": "El bitcoin se hunde un 12% después de que un gran exchange congelara las retiradas"},
    {"topic": "BTC", "source": "news", "expected": "neutral", "text": "El halving de bitcoin llegará la próxima semana y reducirá la recompensa a 3,125 BTC"},
    {"topic": "BTC", "source": "social", "expected": "positive", "text": "Bitcoin rompiendo resistencias, esto no ha hecho más que empezar 🟠 #BTC"},
    {"topic": "BTC", "source": "social", "expected": "negative", "text": "Me han liquidado otra vez con este desplome del bitcoin. Estoy harto de las criptos."},
    {"topic": "BTC", "source": "social", "expected": "neutral", "text": "¿En qué casilla de la renta se declaran las ganancias de bitcoin? Pregunto por un amigo 😅"},
    {"topic": "BTC", "source": "social", "expected": "positive", "text": "¡Bitcoin en máximos históricos! Cuatro años aguantando y por fin ha merecido la pena 🙌"},
    {"topic": "Airbus", "source": "news", "expected": "positive", "text": "Airbus logra un pedido récord de 500 aviones de IndiGo y sus acciones suben"},
    {"topic": "Airbus", "source": "news", "expected": "negative", "text": "Airbus recorta su objetivo de entregas por la escasez de motores"},
    {"topic": "Airbus", "source": "news", "expected": "neutral", "text": "Airbus publicará sus resultados semestrales el 31 de julio"},
    {"topic": "Airbus", "source": "social", "expected": "positive", "text": "La cartera de pedidos de Airbus es brutal. Años de trabajo asegurados en Getafe y Sevilla ✈️"},
    {"topic": "Airbus", "source": "social", "expected": "negative", "text": "Otro retraso de Airbus en las entregas del A321. Las aerolíneas ya no saben qué hacer."},
    {"topic": "Airbus", "source": "social", "expected": "neutral", "text": "¿Alguien va al salón aeronáutico de París la semana que viene? Quiero ver qué anuncia Airbus."},
    {"topic": "Airbus", "source": "news", "expected": "neutral", "text": "Airbus nombra un nuevo responsable de su división de aviones comerciales a partir del 1 de enero"},
    {"topic": "Toyota", "source": "news", "expected": "positive", "text": "Toyota bate su récord de beneficios gracias al tirón de los híbridos"},
    {"topic": "Toyota", "source": "news", "expected": "negative", "text": "Toyota suspende los envíos de varios modelos por el escándalo de las certificaciones"},
    {"topic": "Toyota", "source": "news", "expected": "neutral", "text": "El presidente de Toyota dará una rueda de prensa sobre su estrategia eléctrica el martes"},
    {"topic": "Toyota", "source": "social", "expected": "positive", "text": "Toyota tenía razón con los híbridos. Mi Corolla no gasta nada y no me ha dado ni un problema 👏"},
    {"topic": "Toyota", "source": "social", "expected": "negative", "text": "Lo de Toyota falseando pruebas de seguridad me parece una vergüenza. Pensaba que eran de fiar."},
    {"topic": "Toyota", "source": "social", "expected": "neutral", "text": "¿Sabéis cuándo llega el nuevo Toyota C-HR a los concesionarios?"},
    {"topic": "Toyota", "source": "news", "expected": "positive", "text": "Toyota eleva sus previsiones anuales tras vender más híbridos que nunca en Norteamérica"},
]

_FR: list[dict] = [
    {"topic": "AAPL", "source": "news", "expected": "positive", "text": "Apple dépasse les attentes grâce à l'iPhone, le titre bondit de 4 % après la clôture"},
    {"topic": "AAPL", "source": "news", "expected": "negative", "text": "Apple recule en Bourse après une amende de 1,8 milliard d'euros infligée par Bruxelles"},
    {"topic": "AAPL", "source": "news", "expected": "neutral", "text": "Apple publiera ses résultats du deuxième trimestre fiscal jeudi après la clôture de Wall Street"},
    {"topic": "AAPL", "source": "social", "expected": "positive", "text": "Encore un record pour les services d'Apple. Cette boîte est une vraie machine à cash 🍏"},
    {"topic": "AAPL", "source": "social", "expected": "negative", "text": "J'ai tout vendu sur Apple. L'iPhone n'innove plus et le Vision Pro fait un flop."},
    {"topic": "AAPL", "source": "social", "expected": "neutral", "text": "Quelqu'un sait à quelle heure commence la keynote d'Apple, heure de Paris ?"},
    {"topic": "AAPL", "source": "news", "expected": "neutral", "text": "Apple tiendra sa conférence des développeurs WWDC du 10 au 14 juin"},
    {"topic": "TSLA", "source": "news", "expected": "positive", "text": "Tesla dépasse les prévisions de livraisons, l'action s'envole de 7 %"},
    {"topic": "TSLA", "source": "news", "expected": "negative", "text": "Tesla baisse encore ses prix en Chine, ses marges au plus bas depuis cinq ans"},
    {"topic": "TSLA", "source": "news", "expected": "neutral", "text": "Tesla tiendra son assemblée générale annuelle le 13 juin à Austin"},
    {"topic": "TSLA", "source": "social", "expected": "positive", "text": "Testé le FSD ce matin, zéro intervention. Tesla a des années d'avance 🚀"},
    {"topic": "TSLA", "source": "social", "expected": "negative", "text": "Résultats de Tesla catastrophiques, pas de nouveau modèle avant 2026. Je solde ma ligne."},
    {"topic": "TSLA", "source": "social", "expected": "neutral", "text": "Les chiffres de livraisons de Tesla tombent lundi. Vos pronostics ?"},
    {"topic": "NVDA", "source": "news", "expected": "positive", "text": "Nvidia pulvérise les attentes grâce à l'IA et atteint un nouveau record en Bourse"},
    {"topic": "NVDA", "source": "news", "expected": "negative", "text": "Nvidia chute de 9 % après le durcissement des restrictions américaines à l'export vers la Chine"},
    {"topic": "NVDA", "source": "news", "expected": "neutral", "text": "Le patron de Nvidia, Jensen Huang, prononcera le discours d'ouverture du Computex à Taipei"},
    {"topic": "NVDA", "source": "social", "expected": "positive", "text": "Les revenus data center de Nvidia sont délirants. Je garde toutes mes actions 💪"},
    {"topic": "NVDA", "source": "social", "expected": "negative", "text": "Nvidia perd 6 % en préouverture sur des prévisions décevantes. La bulle IA se dégonfle 📉"},
    {"topic": "NVDA", "source": "social", "expected": "neutral", "text": "Résultats de Nvidia ce soir à 22h30, qui suit la conférence en direct ?"},
    {"topic": "BTC", "source": "news", "expected": "positive", "text": "Le bitcoin franchit les 70 000 dollars, porté par des entrées record dans les ETF"},
    {"topic": "BTC", "source": "news", "expected": "negative", "text": "Le bitcoin plonge de 12 % après le gel des retraits sur une grande plateforme"},
    {"topic": "BTC", "source": "news", "expected": "neutral", "text": "Le halving du bitcoin est attendu la semaine prochaine, la récompense passera à 3,125 BTC"},
    {"topic": "BTC", "source": "social", "expected": "positive", "text": "Le bitcoin casse enfin sa résistance, la suite s'annonce belle 🟠 #BTC"},
    {"topic": "BTC", "source": "social", "expected": "negative", "text": "Encore liquidé sur cette chute du bitcoin. Les cryptos, c'est fini pour moi."},
    {"topic": "BTC", "source": "social", "expected": "neutral", "text": "Petite question : faut-il déclarer son compte bitcoin à l'étranger sur le formulaire 3916-bis ?"},
    {"topic": "BTC", "source": "social", "expected": "positive", "text": "Nouveau record historique pour le bitcoin ! Quatre ans à tenir bon, ça paie enfin 🙌"},
    {"topic": "Airbus", "source": "news", "expected": "positive", "text": "Airbus décroche une commande record de 500 avions auprès d'IndiGo"},
    {"topic": "Airbus", "source": "news", "expected": "negative", "text": "Airbus abaisse son objectif de livraisons face à la pénurie de moteurs"},
    {"topic": "Airbus", "source": "news", "expected": "neutral", "text": "Airbus publiera ses résultats semestriels le 31 juillet"},
    {"topic": "Airbus", "source": "social", "expected": "positive", "text": "Carnet de commandes d'Airbus plein pour dix ans. Fier de notre champion européen ✈️🇪🇺"},
    {"topic": "Airbus", "source": "social", "expected": "negative", "text": "Encore des retards de livraison chez Airbus, les compagnies commencent à perdre patience."},
    {"topic": "Airbus", "source": "social", "expected": "neutral", "text": "Qui va au salon du Bourget la semaine prochaine ? Curieux de voir les annonces d'Airbus."},
    {"topic": "Airbus", "source": "news", "expected": "neutral", "text": "Airbus nomme un nouveau directeur de sa division avions commerciaux à compter du 1er janvier"},
    {"topic": "Toyota", "source": "news", "expected": "positive", "text": "Toyota signe un bénéfice annuel record grâce à ses hybrides"},
    {"topic": "Toyota", "source": "news", "expected": "negative", "text": "Toyota suspend les livraisons de plusieurs modèles après un scandale de certification"},
    {"topic": "Toyota", "source": "news", "expected": "neutral", "text": "Le président de Toyota tiendra mardi une conférence de presse sur sa stratégie électrique"},
    {"topic": "Toyota", "source": "social", "expected": "positive", "text": "Ma Yaris hybride consomme 4 litres aux cent, Toyota avait vu juste 👏"},
    {"topic": "Toyota", "source": "social", "expected": "negative", "text": "Toyota qui truque ses tests de sécurité, quelle déception. La confiance est rompue."},
    {"topic": "Toyota", "source": "social", "expected": "neutral", "text": "Quelqu'un sait quand le nouveau Toyota C-HR arrive en concession ?"},
    {"topic": "Toyota", "source": "news", "expected": "positive", "text": "Toyota relève ses prévisions annuelles grâce à des ventes d'hybrides record en Amérique du Nord"},
]

_DE: list[dict] = [
    {"topic": "AAPL", "source": "news", "expected": "positive", "text": "Apple übertrifft Erwartungen dank starker iPhone-Verkäufe – Aktie steigt nachbörslich um 4 Prozent"},
    {"topic": "AAPL", "source": "news", "expected": "negative", "text": "Apple-Aktie unter Druck: EU verhängt Strafe von 1,8 Milliarden Euro"},
    {"topic": "AAPL", "source": "news", "expected": "neutral", "text": "Apple legt am Donnerstag nach US-Börsenschluss Zahlen zum zweiten Geschäftsquartal vor"},
    {"topic": "AAPL", "source": "social", "expected": "positive", "text": "Services bei Apple schon wieder auf Rekordniveau. Die Gelddruckmaschine läuft 🍏"},
    {"topic": "AAPL", "source": "social", "expected": "negative", "text": "Hab heute meine Apple-Aktien verkauft. Das iPhone langweilt nur noch und die Vision Pro floppt."},
    {"topic": "AAPL", "source": "social", "expected": "neutral", "text": "Weiß jemand, wann die Apple-Keynote nach deutscher Zeit beginnt?"},
    {"topic": "AAPL", "source": "news", "expected": "neutral", "text": "Apple veranstaltet Entwicklerkonferenz WWDC vom 10. bis 14. Juni"},
    {"topic": "TSLA", "source": "news", "expected": "positive", "text": "Tesla übertrifft Auslieferungsprognosen – Aktie springt um 7 Prozent"},
    {"topic": "TSLA", "source": "news", "expected": "negative", "text": "Tesla senkt in China erneut die Preise, Marge auf Fünfjahrestief"},
    {"topic": "TSLA", "source": "news", "expected": "neutral", "text": "Tesla hält Hauptversammlung am 13. Juni in Austin ab"},
    {"topic": "TSLA", "source": "social", "expected": "positive", "text": "FSD heute getestet, null Eingriffe. Tesla ist der Konkurrenz Jahre voraus 🚀"},
    {"topic": "TSLA", "source": "social", "expected": "negative", "text": "Die Tesla-Zahlen sind eine Katastrophe. Kein neues Modell vor 2026, Margen im Keller. Bin raus."},
    {"topic": "TSLA", "source": "social", "expected": "neutral", "text": "Tesla veröffentlicht am Montag die Auslieferungszahlen. Was sind eure Schätzungen?"},
    {"topic": "NVDA", "source": "news", "expected": "positive", "text": "Nvidia pulverisiert Umsatzprognose dank KI-Boom – Aktie auf Rekordhoch"},
    {"topic": "NVDA", "source": "news", "expected": "negative", "text": "Nvidia bricht um 9 Prozent ein: USA verschärfen Exportkontrollen für KI-Chips nach China"},
    {"topic": "NVDA", "source": "news", "expected": "neutral", "text": "Nvidia-Chef Jensen Huang hält Eröffnungsrede auf der Computex in Taipeh"},
    {"topic": "NVDA", "source": "social", "expected": "positive", "text": "Der Rechenzentrumsumsatz bei Nvidia explodiert. Ich halte jede einzelne Aktie 💪"},
    {"topic": "NVDA", "source": "social", "expected": "negative", "text": "Nvidia vorbörslich 6 Prozent im Minus wegen schwacher Prognose. War einfach zu teuer 📉"},
    {"topic": "NVDA", "source": "social", "expected": "neutral", "text": "Nvidia-Zahlen heute Abend um 22:20 Uhr. Wer schaut den Call mit?"},
    {"topic": "BTC", "source": "news", "expected": "positive", "text": "Bitcoin knackt die Marke von 70.000 Dollar – Rekordzuflüsse in Spot-ETFs"},
    {"topic": "BTC", "source": "news", "expected": "negative", "text": "Bitcoin stürzt um 12 Prozent ab, nachdem große Börse Auszahlungen stoppt"},
    {"topic": "BTC", "source": "news", "expected": "neutral", "text": "Bitcoin-Halving steht nächste Woche an – Blockbelohnung sinkt auf 3,125 BTC"},
    {"topic": "BTC", "source": "social", "expected": "positive", "text": "Bitcoin bricht endlich aus der Range aus. HODL hat sich gelohnt 🟠"},
    {"topic": "BTC", "source": "social", "expected": "negative", "text": "Schon wieder liquidiert bei diesem Bitcoin-Crash. Ich hab echt die Nase voll von Krypto."},
    {"topic": "BTC", "source": "social", "expected": "neutral", "text": "Kurze Frage: Sind Bitcoin-Gewinne nach einem Jahr Haltefrist in Deutschland wirklich steuerfrei?"},
    {"topic": "BTC", "source": "social", "expected": "positive", "text": "Bitcoin auf neuem Allzeithoch! Vier Jahre durchgehalten, jetzt zahlt es sich endlich aus 🙌"},
    {"topic": "Airbus", "source": "news", "expected": "positive", "text": "Airbus erhält Rekordauftrag über 500 Flugzeuge von IndiGo"},
    {"topic": "Airbus", "source": "news", "expected": "negative", "text": "Airbus senkt Auslieferungsziel wegen Triebwerksmangels"},
    {"topic": "Airbus", "source": "news", "expected": "neutral", "text": "Airbus veröffentlicht Halbjahreszahlen am 31. Juli"},
    {"topic": "Airbus", "source": "social", "expected": "positive", "text": "Das Auftragsbuch von Airbus ist für zehn Jahre voll. Starkes Stück europäische Industrie ✈️"},
    {"topic": "Airbus", "source": "social", "expected": "negative", "text": "Schon wieder Lieferverzögerungen bei Airbus. Die Airlines verlieren langsam die Geduld."},
    {"topic": "Airbus", "source": "social", "expected": "neutral", "text": "Wer ist nächste Woche auf der ILA in Berlin? Bin gespannt, was Airbus zeigt."},
    {"topic": "Airbus", "source": "news", "expected": "neutral", "text": "Airbus beruft neuen Chef für die Verkehrsflugzeugsparte zum 1. Januar"},
    {"topic": "Toyota", "source": "news", "expected": "positive", "text": "Toyota erzielt Rekordgewinn dank boomender Hybridnachfrage"},
    {"topic": "Toyota", "source": "news", "expected": "negative", "text": "Toyota stoppt Auslieferung mehrerer Modelle nach Zertifizierungsskandal"},
    {"topic": "Toyota", "source": "news", "expected": "neutral", "text": "Toyota-Chef gibt am Dienstag Pressekonferenz zur Elektrostrategie"},
    {"topic": "Toyota", "source": "social", "expected": "positive", "text": "Mein Toyota-Hybrid läuft seit 250.000 km ohne Probleme. Die haben einfach alles richtig gemacht 👏"},
    {"topic": "Toyota", "source": "social", "expected": "negative", "text": "Toyota manipuliert Sicherheitstests? Echt enttäuschend, hätte ich nie gedacht."},
    {"topic": "Toyota", "source": "social", "expected": "neutral", "text": "Weiß jemand, wann der neue Toyota C-HR bei den Händlern steht?"},
    {"topic": "Toyota", "source": "news", "expected": "positive", "text": "Toyota hebt Jahresprognose an – Hybridabsatz in Nordamerika auf Rekordniveau"},
]

_IT: list[dict] = [
    {"topic": "NVDA", "source": "news", "expected": "positive", "text": "Nvidia vola a Wall Street dopo conti record trainati dall'intelligenza artificiale"},
    {"topic": "Toyota", "source": "news", "expected": "negative", "text": "Toyota richiama un milione di auto per un difetto ai sensori degli airbag"},
    {"topic": "BTC", "source": "social", "expected": "neutral", "text": "Qualcuno sa come si dichiarano i bitcoin nel 730 quest'anno?"},
    {"topic": "Airbus", "source": "news", "expected": "positive", "text": "Airbus, commessa record da 500 aerei: il titolo guadagna il 3% a Parigi"},
]

_PT: list[dict] = [
    {"topic": "BTC", "source": "news", "expected": "negative", "text": "Bitcoin despenca 10% após corretora suspender saques"},
    {"topic": "AAPL", "source": "news", "expected": "positive", "text": "Apple supera expectativas com vendas recordes do iPhone e ações sobem 4%"},
    {"topic": "Toyota", "source": "social", "expected": "neutral", "text": "Alguém sabe quando o novo Corolla Cross chega às concessionárias?"},
    {"topic": "NVDA", "source": "social", "expected": "negative", "text": "Nvidia caindo 6% no pré-mercado. Tava cara demais, era questão de tempo 📉"},
]

# --------------------------------------------------------------------------------------------
# Burst texts: one Tesla story (mass recall over Autopilot + probe into a fatal crash), reported
# in every language, news and social. Per language 10 negative, 2 neutral, 1 positive.
# --------------------------------------------------------------------------------------------

_BURST_EN: list[dict] = [
    {"source": "news", "expected": "negative", "text": "Tesla recalls more than 2 million vehicles over Autopilot safety defect"},
    {"source": "news", "expected": "negative", "text": "U.S. regulators open probe into fatal Tesla crash involving Autopilot"},
    {"source": "news", "expected": "negative", "text": "Tesla shares tumble 8% as recall widens to nearly every car it has sold in the U.S."},
    {"source": "news", "expected": "negative", "text": "NHTSA says Tesla's driver-monitoring system was 'insufficient' to prevent misuse"},
    {"source": "news", "expected": "negative", "text": "Tesla faces fresh lawsuit from family of driver killed in Autopilot crash"},
    {"source": "social", "expected": "negative", "text": "2 MILLION cars recalled. $TSLA is getting destroyed and Elon is posting memes. Unreal."},
    {"source": "social", "expected": "negative", "text": "Just saw the footage of that Tesla crash on the highway. Horrifying. How is Autopilot still legal?"},
    {"source": "social", "expected": "negative", "text": "Dumped all my $TSLA on the recall news. Regulators are finally waking up 📉"},
    {"source": "social", "expected": "negative", "text": "My Model 3 just got the recall notice. Great, love being a beta tester for a car I paid $45k for."},
    {"source": "social", "expected": "negative", "text": "$TSLA red across the board, down 8% and still falling. This probe could get ugly."},
    {"source": "news", "expected": "neutral", "text": "Tesla says the recall will be handled through an over-the-air software update"},
    {"source": "social", "expected": "neutral", "text": "Does the Tesla recall apply to a 2019 Model S? Trying to find where to enter my VIN on the NHTSA site."},
    {"source": "social", "expected": "positive", "text": "The recall is just an OTA update, nobody even has to visit a service center. Buying the $TSLA dip 🚀"},
]

_BURST_ZH: list[dict] = [
    {"source": "news", "expected": "negative", "text": "特斯拉召回逾200万辆汽车，涉及Autopilot自动辅助驾驶安全隐患"},
    {"source": "news", "expected": "negative", "text": "美国监管机构就一起致命事故对特斯拉Autopilot展开调查"},
    {"source": "news", "expected": "negative", "text": "召回范围扩大，特斯拉股价盘中暴跌8%"},
    {"source": "news", "expected": "negative", "text": "市场监管总局：特斯拉在华召回160万辆汽车"},
    {"source": "news", "expected": "negative", "text": "特斯拉遭车祸遇难者家属起诉，索赔金额未披露"},
    {"source": "social", "expected": "negative", "text": "200万辆召回！特斯拉这次是真的翻车了，马斯克还在发表情包"},
    {"source": "social", "expected": "negative", "text": "看了高速上那个特斯拉事故视频，太吓人了，辅助驾驶还敢用吗？"},
    {"source": "social", "expected": "negative", "text": "特斯拉全部清仓，监管终于出手了📉"},
    {"source": "social", "expected": "negative", "text": "刚收到特斯拉的召回通知，花了二十多万买来当小白鼠，气死了"},
    {"source": "social", "expected": "negative", "text": "特斯拉一路绿，跌了8%还没止住，这次调查怕是不好收场"},
    {"source": "news", "expected": "neutral", "text": "特斯拉表示，此次召回将通过OTA远程升级方式完成"},
    {"source": "social", "expected": "neutral", "text": "请问特斯拉这次召回包括2021款Model 3吗？在哪里查车架号？"},
    {"source": "social", "expected": "positive", "text": "召回只是OTA升级而已，都不用去门店，逢低上车特斯拉🚀"},
]

_BURST_JA: list[dict] = [
    {"source": "news", "expected": "negative", "text": "テスラ、200万台超をリコール　オートパイロットに安全上の欠陥"},
    {"source": "news", "expected": "negative", "text": "米当局、テスラの死亡事故を受けオートパイロットの調査を開始"},
    {"source": "news", "expected": "negative", "text": "テスラ株8%急落　リコール対象が米国販売のほぼ全車両に拡大"},
    {"source": "news", "expected": "negative", "text": "テスラ、日本でも約1万台のリコールを国土交通省に届け出"},
    {"source": "news", "expected": "negative", "text": "テスラの死亡事故、遺族が同社を提訴"},
    {"source": "social", "expected": "negative", "text": "200万台リコールってやばすぎ。テスラ株ボロボロなのにイーロンはミーム投稿してて草"},
    {"source": "social", "expected": "negative", "text": "高速でのテスラ事故の映像見たけど怖すぎる。オートパイロットってまだ使って大丈夫なの？"},
    {"source": "social", "expected": "negative", "text": "リコールのニュースでテスラ全部売った。規制当局が本気出してきたな📉"},
    {"source": "social", "expected": "negative", "text": "うちのモデル3にもリコール通知来た。高い金払ってβテスターやらされてる気分"},
    {"source": "social", "expected": "negative", "text": "テスラ株、今日だけで8%下げてまだ止まらない。この調査は長引きそう"},
    {"source": "news", "expected": "neutral", "text": "テスラ、リコールはソフトウェアの無線更新で対応と説明"},
    {"source": "social", "expected": "neutral", "text": "今回のテスラのリコールって2020年式のモデルYも対象？車台番号どこで確認できるんだろ"},
    {"source": "social", "expected": "positive", "text": "リコールって言ってもOTAアップデートだけでしょ。むしろテスラ押し目買いのチャンス🚀"},
]

_BURST_ES: list[dict] = [
    {"source": "news", "expected": "negative", "text": "Tesla llama a revisión a más de 2 millones de vehículos por un fallo de seguridad del Autopilot"},
    {"source": "news", "expected": "negative", "text": "Los reguladores de EE. UU. investigan un accidente mortal de un Tesla con el Autopilot activado"},
    {"source": "news", "expected": "negative", "text": "Las acciones de Tesla se desploman un 8% tras ampliarse la llamada a revisión"},
    {"source": "news", "expected": "negative", "text": "La NHTSA considera 'insuficiente' el sistema de vigilancia del conductor de Tesla"},
    {"source": "news", "expected": "negative", "text": "La familia de un conductor fallecido demanda a Tesla por el Autopilot"},
    {"source": "social", "expected": "negative", "text": "¡2 millones de coches a revisión! Tesla hundiéndose y Musk subiendo memes. Increíble."},
    {"source": "social", "expected": "negative", "text": "Acabo de ver el vídeo del accidente del Tesla en la autopista. Terrorífico. ¿Cómo sigue siendo legal el Autopilot?"},
    {"source": "social", "expected": "negative", "text": "He vendido todas mis Tesla con lo de la revisión. Por fin los reguladores se ponen serios 📉"},
    {"source": "social", "expected": "negative", "text": "Me acaba de llegar la carta de la revisión de mi Model 3. 45.000 euros para hacer de conejillo de indias..."},
    {"source": "social", "expected": "negative", "text": "Tesla en rojo, cae un 8% y sigue bajando. Esta investigación puede ponerse muy fea."},
    {"source": "news", "expected": "neutral", "text": "Tesla afirma que la revisión se resolverá con una actualización de software remota"},
    {"source": "social", "expected": "neutral", "text": "¿Alguien sabe si la revisión de Tesla afecta al Model Y de 2022? No encuentro dónde meter el número de bastidor."},
    {"source": "social", "expected": "positive", "text": "La revisión es solo una actualización OTA, ni hay que pasar por el taller. Aprovecho la caída para comprar Tesla 🚀"},
]

_BURST_FR: list[dict] = [
    {"source": "news", "expected": "negative", "text": "Tesla rappelle plus de 2 millions de véhicules pour un défaut de sécurité de l'Autopilot"},
    {"source": "news", "expected": "negative", "text": "Les autorités américaines ouvrent une enquête après un accident mortel impliquant une Tesla"},
    {"source": "news", "expected": "negative", "text": "Tesla dévisse de 8 % en Bourse, le rappel concerne la quasi-totalité de son parc américain"},
    {"source": "news", "expected": "negative", "text": "La NHTSA juge « insuffisant » le système de surveillance du conducteur de Tesla"},
    {"source": "news", "expected": "negative", "text": "La famille d'un conducteur tué sous Autopilot porte plainte contre Tesla"},
    {"source": "social", "expected": "negative", "text": "2 MILLIONS de voitures rappelées. Tesla s'effondre et Musk poste des mèmes. Hallucinant."},
    {"source": "social", "expected": "negative", "text": "Je viens de voir la vidéo de l'accident de la Tesla sur l'autoroute. Glaçant. Comment l'Autopilot est-il encore autorisé ?"},
    {"source": "social", "expected": "negative", "text": "J'ai tout vendu sur Tesla après l'annonce du rappel. Les régulateurs se réveillent enfin 📉"},
    {"source": "social", "expected": "negative", "text": "Reçu le courrier de rappel pour ma Model 3. 45 000 balles pour servir de cobaye, merci Tesla."},
    {"source": "social", "expected": "negative", "text": "Tesla dans le rouge, -8 % et ça continue de baisser. Cette enquête risque de faire mal."},
    {"source": "news", "expected": "neutral", "text": "Tesla assure que le rappel sera traité par une mise à jour logicielle à distance"},
    {"source": "social", "expected": "neutral", "text": "Le rappel Tesla concerne aussi les Model Y de 2021 ? Je ne trouve pas où entrer mon numéro VIN."},
    {"source": "social", "expected": "positive", "text": "Le rappel, c'est juste une mise à jour OTA, pas besoin d'aller au garage. J'en profite pour renforcer sur Tesla 🚀"},
]

_BURST_DE: list[dict] = [
    {"source": "news", "expected": "negative", "text": "Tesla ruft mehr als zwei Millionen Fahrzeuge wegen Autopilot-Mängeln zurück"},
    {"source": "news", "expected": "negative", "text": "US-Behörde ermittelt nach tödlichem Unfall mit Tesla-Autopilot"},
    {"source": "news", "expected": "negative", "text": "Tesla-Aktie bricht um 8 Prozent ein – Rückruf betrifft fast alle US-Fahrzeuge"},
    {"source": "news", "expected": "negative", "text": "Kraftfahrt-Bundesamt prüft Rückruf auch für in Deutschland zugelassene Teslas"},
    {"source": "news", "expected": "negative", "text": "Familie eines tödlich verunglückten Fahrers verklagt Tesla"},
    {"source": "social", "expected": "negative", "text": "ZWEI MILLIONEN Autos zurückgerufen. Tesla stürzt ab und Musk postet Memes. Unfassbar."},
    {"source": "social", "expected": "negative", "text": "Gerade das Video vom Tesla-Unfall auf der Autobahn gesehen. Erschreckend. Wieso ist der Autopilot überhaupt noch erlaubt?"},
    {"source": "social", "expected": "negative", "text": "Nach der Rückrufmeldung alle Tesla-Aktien verkauft. Endlich greifen die Behörden durch 📉"},
    {"source": "social", "expected": "negative", "text": "Rückrufschreiben für mein Model 3 ist da. 45.000 Euro bezahlt, um Versuchskaninchen zu spielen."},
    {"source": "social", "expected": "negative", "text": "Tesla tiefrot, minus 8 Prozent und es geht weiter runter. Die Ermittlungen könnten übel werden."},
    {"source": "news", "expected": "neutral", "text": "Tesla: Rückruf wird per Software-Update over the air umgesetzt"},
    {"source": "social", "expected": "neutral", "text": "Betrifft der Tesla-Rückruf auch das Model Y von 2022? Finde nicht, wo ich die FIN eingeben kann."},
    {"source": "social", "expected": "positive", "text": "Der Rückruf ist nur ein OTA-Update, keine Werkstatt nötig. Ich kauf den Dip bei Tesla 🚀"},
]

_BURST_IT: list[dict] = [
    {"source": "news", "expected": "negative", "text": "Tesla richiama oltre 2 milioni di veicoli per un difetto dell'Autopilot: il titolo crolla dell'8%"},
]

_BURST_PT: list[dict] = [
    {"source": "news", "expected": "negative", "text": "Tesla faz recall de mais de 2 milhões de carros e ações despencam 8%"},
]


def _tag(lang: str, rows: list[dict], topic: str | None = None) -> list[dict]:
    return [dict(row, lang=lang, **({"topic": topic} if topic else {})) for row in rows]


LANGS: tuple[str, ...] = ("en", "zh", "ja", "es", "fr", "de", "it", "pt")

#: Regular texts: dicts with lang, topic, source, expected, text.
TEXTS: list[dict] = (
    _tag("en", _EN) + _tag("zh", _ZH) + _tag("ja", _JA) + _tag("es", _ES)
    + _tag("fr", _FR) + _tag("de", _DE) + _tag("it", _IT) + _tag("pt", _PT)
)

#: Burst texts: same shape, all on BURST_TOPIC.
BURST_TEXTS: list[dict] = (
    _tag("en", _BURST_EN, BURST_TOPIC) + _tag("zh", _BURST_ZH, BURST_TOPIC)
    + _tag("ja", _BURST_JA, BURST_TOPIC) + _tag("es", _BURST_ES, BURST_TOPIC)
    + _tag("fr", _BURST_FR, BURST_TOPIC) + _tag("de", _BURST_DE, BURST_TOPIC)
    + _tag("it", _BURST_IT, BURST_TOPIC) + _tag("pt", _BURST_PT, BURST_TOPIC)
)

OUTLETS: dict[str, tuple[str, ...]] = {
    "en": ("Reuters", "Bloomberg", "CNBC", "MarketWatch", "Financial Times", "The Wall Street Journal"),
    "zh": ("财新网", "第一财经", "新浪财经", "证券时报", "21世纪经济报道"),
    "ja": ("日本経済新聞", "東洋経済オンライン", "ロイター日本語版", "時事通信", "NHKニュース"),
    "es": ("Expansión", "Cinco Días", "El Economista", "El País Economía"),
    "fr": ("Les Échos", "Le Figaro Économie", "BFM Business", "La Tribune", "Boursorama"),
    "de": ("Handelsblatt", "Börsen-Zeitung", "FAZ", "WirtschaftsWoche", "finanzen.net"),
    "it": ("Il Sole 24 Ore", "Milano Finanza"),
    "pt": ("Valor Econômico", "InfoMoney", "Exame"),
}

USERS: dict[str, tuple[str, ...]] = {
    "en": ("@chartwatcher", "@valueguy88", "@techbull_sam", "@sats_stacker", "@avgeek_lena", "@dividend_dan"),
    "zh": ("@老韭菜2015", "@价值投资小王", "@币圈阿强", "@深圳打工人", "@科技股观察"),
    "ja": ("@kabu_tarou", "@nisa_beginner", "@crypto_hanako", "@toushi_salaryman"),
    "es": ("@inversor_madrid", "@laura_bolsa", "@criptopaco", "@trader_sevilla"),
    "fr": ("@boursicoteur75", "@claire_invest", "@crypto_julien", "@lyon_trader"),
    "de": ("@boersenfuchs", "@dividenden_jan", "@krypto_klaus", "@aktien_anna"),
    "it": ("@trader_milano", "@giulia_borsa"),
    "pt": ("@investidor_sp", "@ana_bolsa"),
}

# Exact raw lines for the dead-letter path. Each breaks exactly one rule of contracts.schema.Event
# (apart from the missing ts, which the replayer adds).
INVALID_LINES: tuple[str, ...] = (
    # not JSON: truncated payload
    '{"id": "bad-1", "source": "news", "topic": "AAPL", "text": ',
    # missing topic
    '{"id": "bad-2", "source": "social", "text": "Great quarter for everyone involved!", "lang": "en", "meta": {"user": "@nobody"}}',
    # empty text and no image
    '{"id": "bad-3", "source": "news", "topic": "BTC", "text": "", "meta": {"outlet": "Reuters"}}',
    # topic longer than 200 characters
    '{"id": "bad-4", "source": "news", "topic": "'
    + "NVDA-" * 50
    + '", "text": "Nvidia shares edge higher in early trading", "lang": "en", "meta": {"outlet": "Reuters"}}',
    # image_b64 that is not valid base64
    '{"id": "bad-5", "source": "social", "topic": "BTC", "text": "chart of the day", "image_b64": "iVBORw0KGgo***not-base64!!***==", "meta": {"user": "@sats_stacker"}}',
    # lang that is not a BCP-47 tag
    '{"id": "bad-6", "source": "news", "topic": "Airbus", "text": "Airbus livre son 12 000e appareil", "lang": "not a lang!!", "meta": {"outlet": "La Tribune"}}',
    # a JSON array instead of an object
    '[{"id": "bad-7", "source": "social", "topic": "TSLA", "text": "array payload"}]',
    # source as a number
    '{"id": "bad-8", "source": 42, "topic": "Toyota", "text": "Toyota unveils new Camry hybrid", "meta": {"outlet": "CNBC"}}',
)


# --------------------------------------------------------------------------------------------
# Tiny PNG images (standard library only)
# --------------------------------------------------------------------------------------------

def _png(width: int, height: int, pixel) -> bytes:
    """Encode an 8-bit RGB PNG; ``pixel(x, y)`` returns an (r, g, b) tuple."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = bytearray()
    for y in range(height):
        raw.append(0)  # filter type: None
        for x in range(width):
            raw.extend(bytes(pixel(x, y)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")


_WHITE = (250, 250, 250)
_GRID = (225, 225, 225)
_GREEN = (22, 163, 74)
_RED = (220, 38, 38)
_BRAND = ((0, 113, 227), (232, 33, 39), (118, 185, 0), (247, 147, 26), (0, 32, 91), (235, 10, 30))


def _line_chart(points: list[int], colour) -> bytes:
    """White background, light grid, a 2-px polyline through ``points`` (one y per x)."""
    n = IMAGE_SIZE

    def pixel(x: int, y: int):
        y0 = points[x]
        y1 = points[min(x + 1, n - 1)]
        lo, hi = min(y0, y1), max(y0, y1)
        if lo - 1 <= y <= hi:
            return colour
        if x % 8 == 0 or y % 8 == 0:
            return _GRID
        return _WHITE

    return _png(n, n, pixel)


def _bar_chart(heights: list[int], colour) -> bytes:
    n = IMAGE_SIZE
    width = n // len(heights)

    def pixel(x: int, y: int):
        bar, offset = divmod(x, width)
        if bar < len(heights) and 1 <= offset < width - 1 and y >= n - heights[bar]:
            return colour
        return _WHITE

    return _png(n, n, pixel)


def _gradient(top, bottom) -> bytes:
    n = IMAGE_SIZE

    def pixel(x: int, y: int):
        t = y / (n - 1)
        return tuple(round(a + (b - a) * t) for a, b in zip(top, bottom))

    return _png(n, n, pixel)


def _solid(colour) -> bytes:
    return _png(IMAGE_SIZE, IMAGE_SIZE, lambda x, y: colour)


def _walk(rng: random.Random, drift: float) -> list[int]:
    """A random walk of IMAGE_SIZE y-coordinates (0 = top), trending by ``drift`` per step."""
    n = IMAGE_SIZE
    y = n * 0.5 + drift * n * -0.5
    out = []
    for _ in range(n):
        y = min(n - 2.0, max(1.0, y + drift + rng.uniform(-1.2, 1.2)))
        out.append(int(y))
    return out


def make_image(rng: random.Random, expected: str) -> tuple[str, str]:
    """A chart-like picture that matches the intended sentiment; returns (kind, png bytes as b64)."""
    n = IMAGE_SIZE
    if expected == "positive":
        if rng.random() < 0.5:
            kind, data = "line_up", _line_chart(_walk(rng, -0.6), _GREEN)
        else:
            heights = sorted(rng.randint(6, n - 4) for _ in range(4))
            kind, data = "bars_up", _bar_chart(heights, _GREEN)
    elif expected == "negative":
        if rng.random() < 0.5:
            kind, data = "line_down", _line_chart(_walk(rng, 0.6), _RED)
        else:
            heights = sorted((rng.randint(6, n - 4) for _ in range(4)), reverse=True)
            kind, data = "bars_down", _bar_chart(heights, _RED)
    else:
        roll = rng.random()
        if roll < 0.4:
            kind, data = "line_flat", _line_chart(_walk(rng, 0.0), (100, 116, 139))
        elif roll < 0.7:
            kind, data = "gradient", _gradient(rng.choice(_BRAND), _WHITE)
        else:
            kind, data = "solid", _solid(rng.choice(_BRAND))
    b64 = base64.b64encode(data).decode("ascii")
    assert len(b64) < MAX_IMAGE_B64, (kind, len(b64))
    return kind, b64


# --------------------------------------------------------------------------------------------
# Stream assembly
# --------------------------------------------------------------------------------------------

def _spread_by_topic(rng: random.Random, rows: list[dict]) -> list[dict]:
    """Order rows so every topic appears at a steady rate over the whole sequence."""
    keyed = []
    for t_index, topic in enumerate(TOPICS):
        items = [r for r in rows if r["topic"] == topic]
        rng.shuffle(items)
        for i, row in enumerate(items):
            keyed.append(((i + rng.uniform(0.1, 0.9)) / len(items), t_index, row))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [k[2] for k in keyed]


def build_lines(seed: int = SEED) -> list[str]:
    """All lines of the sample stream, in order, without trailing newlines."""
    rng = random.Random(seed)
    regular = _spread_by_topic(rng, [dict(r, burst=False) for r in TEXTS])
    burst = [dict(r, burst=True) for r in BURST_TEXTS]
    rng.shuffle(burst)
    rows = regular + burst

    # lang on about half of each language's events
    tagged: set[int] = set()
    for lang in LANGS:
        idx = [i for i, r in enumerate(rows) if r["lang"] == lang]
        tagged.update(rng.sample(idx, (len(idx) + 1) // 2))

    # small inline images
    with_image = set(rng.sample(range(len(regular)), N_IMAGES_REGULAR))
    with_image.update(len(regular) + i for i in rng.sample(range(len(burst)), N_IMAGES_BURST))

    events: list[dict] = []
    for i, row in enumerate(rows):
        lang = row["lang"]
        ev: dict = {"id": "", "source": row["source"], "topic": row["topic"]}
        if i in tagged:
            ev["lang"] = lang
        ev["text"] = row["text"]
        meta: dict = {}
        if row["source"] == "news":
            meta["outlet"] = rng.choice(OUTLETS[lang])
        else:
            meta["user"] = rng.choice(USERS[lang])
        meta["expected"] = row["expected"]
        meta["true_lang"] = lang
        if row["burst"]:
            meta["burst"] = True
        if i in with_image:
            kind, b64 = make_image(rng, row["expected"])
            ev["image_b64"] = b64
            meta["image_kind"] = kind
        ev["meta"] = meta
        events.append(ev)

    regular_events, burst_events = events[: len(regular)], events[len(regular):]

    # invalid lines: one per equal slice of the regular part, never at the very start
    body: list = list(regular_events)
    n_bad = len(INVALID_LINES)
    slice_len = len(regular_events) // n_bad
    positions = [k * slice_len + rng.randrange(1, slice_len) for k in range(n_bad)]
    for pos, bad in sorted(zip(positions, INVALID_LINES), reverse=True):
        body.insert(pos, bad)

    # the burst block goes after about BURST_AT of the whole file
    total = len(body) + len(burst_events)
    cut = round(total * BURST_AT)
    ordered = body[:cut] + burst_events + body[cut:]

    lines: list[str] = []
    counter = 0
    for item in ordered:
        if isinstance(item, str):
            lines.append(item)
            continue
        counter += 1
        item["id"] = f"ev-{counter:04d}"
        lines.append(json.dumps(item, ensure_ascii=False, separators=(", ", ": ")))
    return lines


def main(output: str | Path | None = None) -> Path:
    """Write the sample stream (UTF-8, one payload per line) and return its path."""
    path = Path(output) if output is not None else DEFAULT_OUTPUT
    lines = build_lines()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    written = main(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"wrote {written}")
